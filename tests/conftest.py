"""Shared fixtures: one local Spark session for the whole test run (starting one costs ~10 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """A ``local[2]`` SparkSession, started on first use and stopped when the run ends."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from spark_synth.spark import get_spark

    session = get_spark("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()

