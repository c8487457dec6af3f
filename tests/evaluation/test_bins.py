"""Bin codes written as SQL text give the codes of the binning rule, for any column name, category and edge."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import types as T

from spark_synth.evaluation.bins import (
    EMPTY_BIN,
    NA_BIN,
    OTHER_BIN,
    ColumnBins,
    bin_code,
)
from spark_synth.spark.schema import quoted
from spark_synth.spark.sql import double_literal, string_literal

ODD_NAME = "it's a `col`\\ name.x"
CATEGORIES = ["a'b", "back\\slash", "line\nbreak", "\\u0041", "ünï", "%_*", "' OR 1=1 --"]
EDGES = [-1e16, -2.5, 1e-05, 0.1, 3.0, 1e16]


def expected_code(value, bins: ColumnBins) -> int:
    """The rule, in Python: categories by exact text (null, empty and unknown ones apart), numbers by the count
    of edges at or below them (left-closed bins)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA_BIN
    if bins.kind == "categorical":
        return EMPTY_BIN if value == "" else bins.categories.index(value) if value in bins.categories else OTHER_BIN
    return sum(value >= e for e in bins.edges)


@pytest.mark.parametrize("compact", [False, True], ids=["plain", "compact"])
def test_codes_follow_the_rule_for_hostile_names_categories_and_edges(spark, compact) -> None:
    texts = [*CATEGORIES, "", None, "not kept", "A"]
    numbers = [*EDGES, -1e17, -2.5000001, 0.0, 1e-06, 2.9999, 3.0, 5e15, 2e16, None, float("nan")]
    rows = [(texts[i % len(texts)], numbers[i % len(numbers)]) for i in range(max(len(texts), len(numbers)))]
    schema = T.StructType([T.StructField(ODD_NAME, T.StringType()), T.StructField("n", T.DoubleType())])
    df = spark.createDataFrame(rows, schema)
    category = ColumnBins(ODD_NAME, "categorical", T.StringType(), categories=CATEGORIES)
    number = ColumnBins("n", "numeric", T.DoubleType(), edges=EDGES)
    got = df.select(bin_code(quoted(ODD_NAME), category, compact).alias("c"),
                    bin_code(quoted("n"), number, compact).alias("x")).collect()
    assert [r["c"] for r in got] == [expected_code(t, category) for t, _ in rows]
    assert [r["x"] for r in got] == [expected_code(x, number) for _, x in rows]


def test_dates_bin_on_their_microseconds(spark) -> None:
    days = [dt.date(2020, 1, 1), dt.date(2020, 6, 1), None]
    df = spark.createDataFrame([(d,) for d in days], "d date")
    edge = dt.datetime(2020, 3, 1, tzinfo=dt.timezone.utc).timestamp() * 1e6
    spark_edge = df.selectExpr("CAST(unix_micros(CAST(DATE'2020-03-01' AS TIMESTAMP)) AS DOUBLE) AS e").first()["e"]
    bins = ColumnBins("d", "temporal", T.DateType(), edges=[spark_edge])
    codes = [r[0] for r in df.select(bin_code(quoted("d"), bins)).collect()]
    assert codes == [0, 1, NA_BIN] and spark_edge == pytest.approx(edge, abs=86_400e6)


def test_literals_parse_back_exactly(spark) -> None:
    values = [0.1, -2.5, 1e-05, 5e-324, 1.7976931348623157e308, 123456789.123456789, float("inf")]
    got = spark.sql("SELECT " + ", ".join(f"{double_literal(v)} AS v{i}" for i, v in enumerate(values))).first()
    assert list(got) == values
    texts = ["plain", "it's", "back\\slash", "\\n not a newline", "line\nbreak", "ünï"]
    got = spark.sql("SELECT " + ", ".join(f"{string_literal(t)} AS t{i}" for i, t in enumerate(texts))).first()
    assert list(got) == texts
