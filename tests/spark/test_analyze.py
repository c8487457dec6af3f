"""Spark statistics: encodings chosen from the data, and value protection on real aggregates."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from support.data import CENSUS_DIR

from spark_synth.config import ColumnSettings
from spark_synth.encoding.protect import K_MAX, K_MIN
from spark_synth.errors import SynthError
from spark_synth.spark.analyze import analyze
from spark_synth.spark.schema import plan_columns

CENSUS = str(CENSUS_DIR / "census_train.parquet")


def stats_of(spark, frame: pd.DataFrame, settings: dict | None = None) -> dict:
    df = spark.createDataFrame(frame)
    plans = plan_columns(df.schema, {k: ColumnSettings(**v) for k, v in (settings or {}).items()})
    return {c["name"]: c for c in analyze(df, plans).to_json()["columns"]}


def test_census_encodings_are_chosen_from_the_data(spark) -> None:
    df = spark.read.parquet(CENSUS)
    plans = plan_columns(df.schema, {})
    stats = {c["name"]: c for c in analyze(df, plans).to_json()["columns"]}
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


def test_a_number_near_the_discrete_limit_is_coded_the_same_way_in_every_training(spark) -> None:
    """Values held by K_MAX rows decide, not the secret k: 100 such values are categories, 101 are digits, however
    many more values 5 or 6 rows hold (a secret k of 5 would count those too, in some trainings only)."""
    def column(frequent: int) -> list[int]:
        return [v for v in range(frequent) for _ in range(K_MAX)] + [1000 + v for v in range(20) for _ in range(K_MIN)]

    frame = pd.DataFrame({"at_limit": column(100), "over": column(101)[:800]})
    for _ in range(3):  # each training draws its secret k again
        stats = stats_of(spark, frame)
        assert stats["at_limit"]["encoding"] == "categorical"
        assert stats["over"]["encoding"] == "digits"


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


def flag_table(spark, odd_rows: int, one_subject: bool):
    """200 rows (40 subjects) of integral numbers, no nulls and midnight times, but for ``odd_rows`` rows (of
    as many subjects, or all of subject 0) that have a null, a fractional number and a time of day."""
    odd = f"id < {odd_rows}"
    subject = f"CASE WHEN {odd} THEN {'0' if one_subject else 'id'} ELSE 100 + id % 40 END"
    return spark.sql(
        f"SELECT {subject} AS subject, CASE WHEN {odd} THEN NULL ELSE id % 3 END AS v, "
        f"CAST(id AS DOUBLE) + CASE WHEN {odd} THEN 0.5 ELSE 0 END AS x, "
        f"timestamp_ntz'2020-01-01 00:00:00' + make_interval(0, 0, 0, id, CASE WHEN {odd} THEN 3 ELSE 0 END, 0, 0) AS t "
        "FROM range(200)")


@pytest.mark.parametrize("unit", [None, "subject"])
def test_one_row_or_subject_does_not_flip_the_column_flags(spark, unit: str | None) -> None:
    """has_nulls, integral and has_time follow the k-row rule: one odd row (or one subject's many odd events)
    is not a property of the column; the odd values are rounded and dropped instead."""
    df = flag_table(spark, 1 if unit is None else 20, one_subject=True)
    plans = plan_columns(df.drop("subject").schema, {"x": ColumnSettings(encoding="binned")})
    stats = {c["name"]: c for c in analyze(df, plans, unit=unit).to_json()["columns"]}
    assert [stats[c]["has_nulls"] for c in ("v", "x", "t")] == [False] * 3
    assert stats["x"]["integral"] is True
    assert stats["t"]["has_time"] is False
    digits = plan_columns(df.drop("subject").schema, {"x": ColumnSettings(encoding="digits")})
    assert analyze(df, digits, unit=unit).columns[1].encoding == "digits"  # no longer refused


@pytest.mark.parametrize("unit", [None, "subject"])
def test_flags_held_by_k_rows_or_subjects_stand(spark, unit: str | None) -> None:
    df = flag_table(spark, 8, one_subject=False)  # more than any k, each a subject of its own
    plans = plan_columns(df.drop("subject").schema, {"x": ColumnSettings(encoding="binned")})
    stats = {c["name"]: c for c in analyze(df, plans, unit=unit).to_json()["columns"]}
    assert stats["v"]["has_nulls"] is True
    assert stats["x"]["integral"] is False
    assert stats["t"]["has_time"] is True
