"""spark-synth: privacy-preserving synthetic data, trained and sampled on Spark.

The public API, for notebooks and jobs::

    from spark_synth import TrainConfig, GenerateConfig, train, generate
    outcome = train(TrainConfig(data="customers.parquet", model_dir="gen"))
    generate(GenerateConfig(model="gen", rows=1_000_000, output="synthetic"))

Names load on first use: Spark tasks and MLflow serving import ``spark_synth.generators.flat`` (and so this
package) without pulling in Spark or the training stack.
"""

import os
from importlib import import_module
from typing import Any

# Spark executors share cores between tasks and the JVM. OpenMP's default busy-waiting then makes torch's
# threads spin against each other: measured here, a training step took 16x longer on a busy 2-core machine
# (0.29 s vs 0.018 s). Passive waiting avoids that; it must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_PUBLIC = {  # name -> (module, attribute)
    "train": ("spark_synth.stages.train", "train"),
    "generate": ("spark_synth.stages.generate", "generate"),
    "impute": ("spark_synth.stages.generate", "impute"),
    "evaluate": ("spark_synth.stages.evaluate", "run_evaluation"),
    "load_generator": ("spark_synth.tracking", "load_generator"),
    "TrainConfig": ("spark_synth.config", "TrainConfig"),
    "GenerateConfig": ("spark_synth.config", "GenerateConfig"),
    "ImputeConfig": ("spark_synth.config", "ImputeConfig"),
    "EvaluateConfig": ("spark_synth.config", "EvaluateConfig"),
    "ColumnSettings": ("spark_synth.tables", "ColumnSettings"),
    "TableSpec": ("spark_synth.tables", "TableSpec"),
    "ForeignKey": ("spark_synth.tables", "ForeignKey"),
    "SynthError": ("spark_synth.errors", "SynthError"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'spark_synth' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
