"""Spark statistics: encodings chosen from the data, and value protection on real aggregates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from spark_synth.analyze import analyze
from spark_synth.config import ColumnSettings
from spark_synth.errors import SynthError
from spark_synth.schema import plan_columns

CENSUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "census"  # ../shared beside the repo

CENSUS = str(CENSUS_DIR / "census_train.parquet")


def stats_of(spark, frame: pd.DataFrame, settings: dict | None = None, seed: int = 0) -> dict:
    df = spark.createDataFrame(frame)
    plans = plan_columns(df.schema, {k: ColumnSettings(**v) for k, v in (settings or {}).items()})
    return {c["name"]: c for c in analyze(df, plans, seed)["columns"]}


def test_census_encodings_are_chosen_from_the_data(spark) -> None:
    df = spark.read.parquet(CENSUS)
    plans = plan_columns(df.schema, {})
    stats = {c["name"]: c for c in analyze(df, plans, seed=0)["columns"]}
    assert stats["age"]["encoding"] == "categorical"  # ~70 protected values: categorical-like
    assert stats["fnlwgt"]["encoding"] == "binned"  # a wide integer range
    assert stats["workclass"]["encoding"] == "categorical" and "Private" in stats["workclass"]["values"]
    edges = stats["fnlwgt"]["edges"]
    assert 90 <= len(edges) <= 101 and edges == sorted(edges)
    true_min, true_max = df.agg({"fnlwgt": "min"}).first()[0], df.agg({"fnlwgt": "max"}).first()[0]
    assert true_min < stats["fnlwgt"]["min"] and stats["fnlwgt"]["max"] < true_max


def test_rare_categories_and_extremes_are_protected(spark) -> None:
    rows = [{"c": "common", "n": float(i % 50), "d": dt.date(2000, 1, 1) + dt.timedelta(days=i % 300)}
            for i in range(400)]
    rows += [{"c": "four", "n": 1.5, "d": dt.date(2000, 5, 5)}] * 4  # below any k in 5..7
    rows += [{"c": "eight", "n": 2.5, "d": dt.date(2000, 6, 6)}] * 8  # above any k
    rows += [{"c": "solo", "n": 1e12, "d": dt.date(1900, 1, 1)}]  # unique category and extremes
    stats = stats_of(spark, pd.DataFrame(rows), {"n": {"encoding": "binned"}})
    assert stats["c"]["values"] == ["common", "eight"] and stats["c"]["has_rare"]
    assert stats["n"]["max"] < 1e12 and max(stats["n"]["edges"]) < 1e12
    assert stats["d"]["min"] > int(pd.Timestamp("1999-12-31").value // 1000)  # micros: 1900 is not the bound


def test_integer_ids_are_keys_but_unique_measurements_are_not(spark) -> None:
    frame = pd.DataFrame({"id": range(1000, 1600), "weight": [i * 9973 % 1_000_003 + i * 1000 for i in range(600)],
                          "x": ["a", "b"] * 300})
    stats = stats_of(spark, frame)
    assert stats["id"]["encoding"] == "key"
    assert stats["weight"]["encoding"] in ("binned", "digits")


@pytest.mark.parametrize("bad", ["all_null", "too_few"])
def test_columns_that_cannot_be_protected_are_refused(spark, bad: str) -> None:
    frame = pd.DataFrame({"x": ["a"] * 50, "v": [None] * 50 if bad == "all_null" else [1.5] * 3 + [None] * 47})
    frame["v"] = frame["v"].astype("float64")
    with pytest.raises(SynthError, match="'?v'?"):
        stats_of(spark, frame, {"v": {"encoding": "binned"}})




def test_only_string_and_integer_columns_can_be_keys(spark) -> None:
    df = spark.createDataFrame(pd.DataFrame({"x": [1.5, 2.5]}))
    with pytest.raises(SynthError, match="only string and integer columns can be keys"):
        plan_columns(df.schema, {"x": ColumnSettings(encoding="key")})
