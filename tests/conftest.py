"""Shared fixtures: one local Spark session for the whole test run (starting one costs ~10 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A ``local[2]`` SparkSession, started on first use and stopped when the run ends; catalog tables the
    tests write go to a temporary warehouse."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from spark_synth.spark import get_spark

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = get_spark("local[2]", conf={"spark.sql.warehouse.dir": str(warehouse)})
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()

