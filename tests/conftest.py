"""Shared fixtures: one local Spark session for the whole test run (starting one costs ~10 s), a throwaway
MLflow store, the real samples, and one generator trained through the CLI.

Training is the slow part, so the generator trained here is shared by every test that only needs *a*
generator. MLflow always points at a sqlite store and an artifact root under pytest's temp dir, never at the
working directory. Fixtures start nothing until a test asks for them: the Spark-free tests start no JVM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from support.data import (
    BASEBALL,
    CENSUS,
    N_PLAYERS,
    REGISTERED_NAME,
    SAMPLE_ROWS,
    MlflowStore,
    TrainedGenerator,
    tree_digest,
)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A ``local[2]`` SparkSession, started on first use and stopped when the run ends; catalog tables the
    tests write go to a temporary warehouse."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from spark_synth.spark.session import get_spark

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = get_spark("local[2]", conf={"spark.sql.warehouse.dir": str(warehouse)})
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


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
    from spark_synth.face import cli

    model_dir = tmp_path_factory.mktemp("trained") / "generator"
    rc = cli.run([
        "train", "--data", str(census_parquet), "--model-dir", str(model_dir), "--max-minutes", "0.2",
        "--tracking-uri", mlflow_store.uri, "--register", REGISTERED_NAME, "--alias", "candidate", "--no-progress",
    ])
    assert rc == 0
    run_id = json.loads((model_dir / "meta.json").read_text())["mlflow_run_id"]
    return TrainedGenerator(census_parquet, model_dir, run_id, REGISTERED_NAME, mlflow_store)


@pytest.fixture(scope="session")
def digest() -> Callable[[Path], dict[str, str]]:
    """``digest(path)``: a snapshot of a file or directory tree, to compare before and after a command."""
    return tree_digest
