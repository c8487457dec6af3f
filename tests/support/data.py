"""The real data the tests read (from ../shared beside the repo), a throwaway MLflow store, tree digests."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

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

