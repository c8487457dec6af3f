"""MLflow: one run per training, the generator logged as files plus a pyfunc, optional registry."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from spark_synth.errors import SynthError

GENERATOR_ARTIFACT = "generator"
_SECRET = re.compile(r"(//[^/:@]+:)[^@/]+@")


def configure(tracking_uri: str | None) -> str:
    """Use the given URI, else MLFLOW_TRACKING_URI, else the embedded sqlite store in the working dir."""
    import mlflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{os.path.abspath('mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    return uri


def redact(uri: str) -> str:
    """Hide a password in a URI before it is printed or logged."""
    return _SECRET.sub(r"\1***@", uri)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Config as MLflow params: nested keys joined with dots, values as short strings."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif value is not None:
            out[name] = str(value)[:500]
    return out


@contextmanager
def training_run(experiment: str, params: dict[str, Any]) -> Iterator[Any]:
    """An MLflow run that ends FAILED if the body raises."""
    import mlflow

    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_params(flatten(params))
        yield run


def log_epoch(epoch: int, record: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)


def log_generator(model_dir: str, sample: pd.DataFrame, register: str | None) -> str:
    """Log the generator files and a pyfunc over them; register under ``register`` if given.

    Returns the model URI (``models:/NAME/VERSION`` when registered, else ``runs:/...``).
    """
    import mlflow
    from mlflow.models import infer_signature

    import spark_synth

    mlflow.log_artifacts(model_dir, artifact_path=GENERATOR_ARTIFACT)
    code_file = os.path.join(os.path.dirname(spark_synth.__file__), "mlflow_model.py")
    with warnings.catch_warnings():  # MLflow's generic hints about int columns and input examples
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(pd.DataFrame({"rows": [len(sample)], "seed": [0]}), sample)
        info = mlflow.pyfunc.log_model(
            name="pyfunc",
            python_model=code_file,
            artifacts={GENERATOR_ARTIFACT: model_dir},
            code_paths=[os.path.dirname(spark_synth.__file__)],
            signature=signature,
            pip_requirements=["torch", "numpy", "pandas", "pyarrow", "safetensors", "mlflow"],
            registered_model_name=register,
        )
    if register and info.registered_model_version is not None:
        return f"models:/{register}/{info.registered_model_version}"
    return info.model_uri


def resolve_generator_dir(model: str, tracking_uri: str | None = None) -> str:
    """A local directory with the generator files, from a path, ``models:/...`` or ``runs:/...`` URI."""
    if not model.startswith(("models:/", "runs:/")):
        return model
    import mlflow

    configure(tracking_uri)
    target = tempfile.mkdtemp(prefix="spark-synth-model-")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=target)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a missing model
        raise SynthError(f"could not load {model} from MLflow ({type(exc).__name__}: {str(exc)[:200]}).",
                         "Check the model name/version and MLFLOW_TRACKING_URI (or --tracking-uri).") from exc
    for root, _dirs, files in os.walk(local):
        if "stats.json" in files and "weights.safetensors" in files:
            return root
    raise SynthError(f"{model} holds no spark-synth generator files.", "Pass a model logged by `spark-synth train`.")
