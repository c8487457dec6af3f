"""Loading a generator never runs code from its files: planted pickles are ignored or refused.

Each planted pickle would create a marker file when unpickled (its ``__reduce__`` calls ``open``); every
test checks the marker never appears. Generators are JSON + safetensors, checkpoints load with
``weights_only``, and the MLflow pyfunc is a "model from code", so none of them calls ``pickle``.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from spark_synth.errors import SynthError
from spark_synth.face import cli
from spark_synth.generators.flat import FlatGenerator
from spark_synth.training.checkpoint import Checkpointer


class Payload:
    """Unpickling this opens (creates) ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload(marker)))


def test_pickles_beside_the_generator_files_are_never_read(trained_generator, tmp_path: Path) -> None:
    model_dir, marker = tmp_path / "generator", tmp_path / "executed"
    shutil.copytree(trained_generator.model_dir, model_dir)
    for name in ("model.pkl", "weights.pt", "python_model.pkl", "stats.pickle"):
        plant(model_dir / name, marker)
    generated = FlatGenerator.load(str(model_dir)).sample(50, seed=1)
    assert len(generated) == 50
    assert not marker.exists()


@pytest.mark.parametrize("replaced", ["weights.safetensors", "model.json", "stats.json"])
def test_a_pickle_in_place_of_a_generator_file_is_refused(trained_generator, tmp_path: Path, capsys,
                                                          replaced: str) -> None:
    model_dir, marker = tmp_path / "generator", tmp_path / "executed"
    shutil.copytree(trained_generator.model_dir, model_dir)
    plant(model_dir / replaced, marker)
    with pytest.raises(SynthError, match="damaged or foreign generator file"):
        FlatGenerator.load(str(model_dir))
    capsys.readouterr()
    rc = cli.run(["generate", "--model", str(model_dir), "--rows", "10", "--output", str(tmp_path / "out")])
    assert rc == 2 and "nothing from it was run" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_pickled_checkpoint_is_refused_unexecuted(tmp_path: Path) -> None:
    directory, marker = tmp_path / "checkpoints", tmp_path / "executed"
    plant(directory / "model.pt", marker)
    with pytest.raises(SynthError, match="cannot be read"):
        Checkpointer(str(directory), "fingerprint", writer=False).load()
    assert not marker.exists()


def test_the_mlflow_model_ignores_planted_pickles(trained_generator, tmp_path: Path) -> None:
    """The pyfunc loads its code file and the generator's JSON + safetensors; a python_model.pkl (what a pickled
    pyfunc would hold) is never opened."""
    trained_generator.store.activate()
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{trained_generator.registered_name}/1",
                                                     dst_path=str(tmp_path / "downloaded")))
    marker = tmp_path / "executed"
    plant(local / "python_model.pkl", marker)
    plant(local / "artifacts" / "generator" / "model.pkl", marker)
    model = mlflow.pyfunc.load_model(str(local))
    out = model.predict(pd.DataFrame({"rows": [5], "seed": [2]}))
    assert len(out) == 5
    assert not marker.exists()
