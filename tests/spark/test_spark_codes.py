"""The JVM encoder writes, row for row, the codes the numpy codecs compute (which decode and seeding use)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from support.data import CENSUS

from spark_synth.config import ColumnSettings
from spark_synth.encoding import TableCodec
from spark_synth.encoding.packing import unpack
from spark_synth.encoding.stats import TableStats
from spark_synth.examples.datasets import simulate_log
from spark_synth.spark.analyze import analyze
from spark_synth.spark.encode import encode_to_shards
from spark_synth.spark.normalize import normalize
from spark_synth.spark.schema import plan_columns, quoted

ROW = "__row"


def prepared(df: DataFrame, settings: dict | None = None) -> tuple[DataFrame, TableStats]:
    """The normalized table with a row id, and its protected statistics (as training computes them)."""
    df, plans = normalize(df, plan_columns(df.schema, {k: ColumnSettings(**v) for k, v in (settings or {}).items()}))
    stats = analyze(df, plans)
    return df.withColumn(ROW, F.monotonically_increasing_id()), stats


def jvm_codes(df: DataFrame, stats: TableStats, directory: Path) -> np.ndarray:
    fields = encode_to_shards(df, stats, str(directory), passthrough=(ROW,))
    table = pq.read_table(directory)
    return unpack(table, fields)[np.argsort(table.column(ROW).to_numpy())]


def numpy_codes(df: DataFrame, stats: TableStats) -> np.ndarray:
    """The numpy codecs on the same rows, in Python workers (Arrow batches as Spark sends them)."""
    names = [c.name for c in stats.columns]
    width = len(TableCodec(stats).sub_columns)

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        codec = TableCodec(stats)
        for batch in batches:
            codes = codec.encode(pa.RecordBatch.from_arrays(batch.columns[:-1], names=names))
            yield pa.RecordBatch.from_arrays([*(pa.array(codes[:, j]) for j in range(width)), batch.column(len(names))],
                                             names=[*(f"s{j}" for j in range(width)), ROW])

    positional = df.select(*[F.col(quoted(n)).alias(f"c{i}") for i, n in enumerate(names)], ROW)
    schema = ", ".join([*(f"s{j} int" for j in range(width)), f"{ROW} bigint"])
    frame = positional.mapInArrow(encode, schema).toPandas().sort_values(ROW)
    return frame[[f"s{j}" for j in range(width)]].to_numpy()


def assert_same_codes(df: DataFrame, stats: TableStats, directory: Path) -> None:
    expected, got = numpy_codes(df, stats), jvm_codes(df, stats, directory)
    assert got.shape == expected.shape
    names = [s.name for s in TableCodec(stats).sub_columns]
    differing = {names[j]: int((got[:, j] != expected[:, j]).sum()) for j in range(got.shape[1])}
    assert not any(differing.values()), differing


def test_census_codes_match_numpy(spark, tmp_path: Path) -> None:
    df, stats = prepared(spark.read.parquet(str(CENSUS)), {"capital_gain": {"encoding": "digits"}})
    encodings = {c.encoding for c in stats.columns}
    assert {"categorical", "binned", "digits"} <= encodings
    assert_same_codes(df, stats, tmp_path / "census")


def test_simulated_log_codes_match_numpy(spark, tmp_path: Path) -> None:
    customers, events = simulate_log(spark, 3_000, seed=5, mean_events=8)
    df, stats = prepared(events.join(customers, "customer_id").drop("customer_id"))
    assert {c.encoding for c in stats.columns} >= {"datetime", "categorical", "binned"}
    assert_same_codes(df, stats, tmp_path / "log")


def test_edge_values_match_numpy_in_any_session_time_zone(spark, tmp_path: Path) -> None:
    """Nulls everywhere, values outside the protected bounds, rare values, numbers between kept ones,
    dates before 1970, wall-clock times, booleans, decimals, text dates, a dotted name."""
    rng = np.random.default_rng(3)
    n = 600
    start = dt.datetime(1969, 12, 25, 23, 59, 58)

    def with_nulls(values: list, share: float = 0.1) -> list:
        return [None if rng.random() < share else v for v in values]

    words = with_nulls([str(rng.choice(["alpha", "beta", "gamma", "δέλτα"])) for _ in range(n)])
    words[-3:] = ["solo-1", "solo-2", "solo-3"]  # rare
    frame = pd.DataFrame({
        "word.kind": words,
        "flag": with_nulls([bool(b) for b in rng.integers(0, 2, n)]),
        "level": with_nulls([float(v) for v in rng.choice([1.0, 2.0, 4.0, 8.0], n)]),
        "count": with_nulls([int(v) for v in rng.integers(-30, 900, n)]),
        "price": with_nulls([decimal.Decimal(f"{v:.2f}") for v in rng.gamma(2.0, 40.0, n)]),
        "ratio": with_nulls([float(v) for v in rng.normal(size=n)]),
        "born": with_nulls([dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20_000, n)]),
        "at": with_nulls([start + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 400_000, n)]),
        "text_day": with_nulls([str(dt.date(2001, 1, 1) + dt.timedelta(days=int(d))) for d in rng.integers(0, 500, n)]),
        "text_at": with_nulls([str(start + dt.timedelta(seconds=int(s))) for s in rng.integers(0, 900_000, n)]),
    })
    frame.loc[0, "level"], frame.loc[1, "level"] = 3.0, 5.5  # rare numbers between kept ones: nearest kept
    frame.loc[2, "count"], frame.loc[3, "count"] = -10**6, 10**7  # beyond the protected bounds: clipped
    frame.loc[4, "ratio"] = 1e9
    df = spark.createDataFrame(frame).withColumn("wall", F.col("at").cast("timestamp_ntz"))
    settings = {"level": {"encoding": "categorical"}, "count": {"encoding": "digits"}, "price": {"encoding": "binned"}}
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        df, stats = prepared(df, settings)
        encodings = {c.name: c.encoding for c in stats.columns}
        assert encodings["text_day"] == encodings["text_at"] == encodings["wall"] == "datetime"
        assert_same_codes(df, stats, tmp_path / "edge")
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


@pytest.mark.parametrize("setting", ["hugeMethodLimit", None])
def test_the_encode_job_leaves_the_session_settings_as_they_were(spark, tmp_path: Path, setting) -> None:
    key = "spark.sql.codegen.hugeMethodLimit"
    if setting:
        spark.conf.set(key, "12345")
    try:
        df, stats = prepared(spark.createDataFrame(pd.DataFrame({"x": ["a", "b"] * 20})))
        encode_to_shards(df, stats, str(tmp_path / "out"), passthrough=(ROW,))
        assert spark.conf.get(key) == ("12345" if setting else "65535")
    finally:
        spark.conf.unset(key)
