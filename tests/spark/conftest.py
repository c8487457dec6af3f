"""Fixtures for the end-to-end tests: a census sample, a throwaway MLflow store, one shared generator.

Training is the slow part, so the generator trained through the CLI here is shared by every test that
only needs *a* generator (pipeline, bad input, MLflow). MLflow always points at a sqlite store and an
artifact root under pytest's temp dir, never at the working directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

CENSUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "census"  # ../shared beside the repo

CENSUS = CENSUS_DIR / "census_train.parquet"
BASEBALL = CENSUS_DIR.parent / "baseball"
N_PLAYERS = 1_500  # players in the event-log sample (with all their batting seasons)
SAMPLE_ROWS = 3_000
REGISTERED_NAME = "spark_synth_test_census"


@dataclass(frozen=True)
class MlflowStore:
    """A sqlite tracking/registry store whose experiments keep their artifacts under ``root``."""

    root: Path
    uri: str

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment(self, name: str) -> str:
        """Create ``name`` (artifacts under root) unless it exists; the pipeline then reuses it.

        Without this MLflow would put the artifacts of a new experiment in ``./mlruns``.
        """
        client = self.client()
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        location = (self.root / "artifacts" / name).as_uri()
        return client.create_experiment(name, artifact_location=location)

    def activate(self) -> None:
        """Point MLflow's process-wide tracking and registry URIs at this store."""
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)


@dataclass(frozen=True)
class TrainedGenerator:
    data: Path  # the Parquet file it was trained on
    model_dir: Path
    run_id: str
    registered_name: str
    store: MlflowStore


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    root = tmp_path_factory.mktemp("mlflow")
    store = MlflowStore(root, f"sqlite:///{root}/mlflow.db")
    store.experiment("spark-synth")  # the pipeline's default experiment
    return store


@pytest.fixture(scope="session")
def census_sample() -> pd.DataFrame:
    """A fixed 3,000-row sample of the census training table (no nulls in any column)."""
    return pd.read_parquet(CENSUS).sample(SAMPLE_ROWS, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="session")
def baseball_sample() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A fixed sample of baseball players with all their batting seasons: an event log."""
    players = pd.read_parquet(BASEBALL / "players_train.parquet").sample(N_PLAYERS, random_state=3)
    batting = pd.read_parquet(BASEBALL / "batting_train.parquet")
    return players.reset_index(drop=True), batting[batting.players_id.isin(players.id)].reset_index(drop=True)


@pytest.fixture(scope="session")
def census_parquet(tmp_path_factory: pytest.TempPathFactory, census_sample: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("census") / "census.parquet"
    census_sample.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained_generator(
    spark, tmp_path_factory: pytest.TempPathFactory, census_parquet: Path, mlflow_store: MlflowStore
) -> TrainedGenerator:
    """`spark-synth train` on the census sample, registered in the test store (default quality summary)."""
    from spark_synth import cli

    model_dir = tmp_path_factory.mktemp("trained") / "generator"
    rc = cli.run([
        "train", "--data", str(census_parquet), "--model-dir", str(model_dir), "--max-minutes", "0.2",
        "--tracking-uri", mlflow_store.uri, "--register", REGISTERED_NAME, "--alias", "candidate", "--no-progress",
    ])
    assert rc == 0
    run_id = json.loads((model_dir / "meta.json").read_text())["mlflow_run_id"]
    return TrainedGenerator(census_parquet, model_dir, run_id, REGISTERED_NAME, mlflow_store)


def tree_digest(path: Path) -> dict[str, str]:
    """Relative path -> sha256 for every file (hidden ones included) under ``path``; dirs map to 'dir'."""
    path = Path(path)
    if not path.exists():
        return {}
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), path)] = "dir"
        for name in filenames:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as handle:
                out[os.path.relpath(full, path)] = hashlib.sha256(handle.read()).hexdigest()
    return out


@pytest.fixture(scope="session")
def digest() -> Callable[[Path], dict[str, str]]:
    """``digest(path)``: a snapshot of a file or directory tree, to compare before and after a command."""
    return tree_digest
