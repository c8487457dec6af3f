"""Unusual but legal inputs: odd column names, huge or infinite floats, tiny tables, wall-clock times."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spark_synth.config import ColumnSettings, TrainConfig
from spark_synth.errors import SynthError
from spark_synth.generators.flat import FlatGenerator
from spark_synth.spark.analyze import analyze
from spark_synth.spark.schema import plan_columns
from spark_synth.stages.train import train


def stats_of(spark, df, settings: dict | None = None) -> dict:
    plans = plan_columns(df.schema, {k: ColumnSettings(**v) for k, v in (settings or {}).items()})
    return {c["name"]: c for c in analyze(df, plans).to_json()["columns"]}


def test_small_tables_publish_no_single_row_values_as_point_masses(spark) -> None:
    values = np.round(np.random.default_rng(0).normal(size=40), 6)
    stats = stats_of(spark, spark.createDataFrame(pd.DataFrame({"x": values})), {"x": {"encoding": "binned"}})
    assert stats["x"]["point_masses"] == []
    assert len(stats["x"]["edges"]) <= 40 // 7 + 1  # every bin spans several rows


def test_huge_and_infinite_numbers_do_not_break_analysis(spark) -> None:
    frame = pd.DataFrame({"f": [1e300, 2.5, float("inf"), -1.0] * 10, "i": [-2_000_000_000, 2_000_000_000] * 20})
    frame["i"] = frame["i"].astype("int32")
    stats = stats_of(spark, spark.createDataFrame(frame))
    assert stats["f"]["encoding"] and stats["i"]["encoding"]


def test_wall_clock_times_are_detected_without_the_session_time_zone(spark) -> None:
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        df = spark.sql("SELECT timestamp_ntz'2020-01-01 00:00:00' + make_interval(0, 0, 0, id, 0, 0, 0) AS t "
                       "FROM range(40)")
        assert stats_of(spark, df)["t"]["has_time"] is False  # midnights stay dates
        df = spark.sql("SELECT timestamp_ntz'2020-01-01 19:00:00' + make_interval(0, 0, 0, id, 0, 0, 0) AS t "
                       "FROM range(40)")
        assert stats_of(spark, df)["t"]["has_time"] is True
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_odd_column_names_train_and_sample(spark, tmp_path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a`b": rng.choice(["x", "y"], 300), "price ($)": rng.integers(0, 50, 300),
                          "when.day": [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 90, 300)]})
    config = TrainConfig(data=spark.createDataFrame(frame), model_dir=str(tmp_path / "m"), max_minutes=0.05,
                         quality_rows=100, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", progress=False,
                         columns={"price ($)": ColumnSettings(encoding="digits")})
    train(config, spark)
    sample = FlatGenerator.load(str(tmp_path / "m")).sample(50, seed=0)
    assert list(sample.columns) == ["a`b", "price ($)", "when.day"] and len(sample) == 50


def test_a_table_of_identifiers_only_is_refused(spark, tmp_path) -> None:
    config = TrainConfig(data=spark.createDataFrame(pd.DataFrame({"id": [f"u{i}" for i in range(40)]})),
                         model_dir=str(tmp_path / "m"), max_minutes=0.05, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    with pytest.raises(SynthError, match="identifier"):
        train(config, spark)
    assert not (tmp_path / "m").exists()
