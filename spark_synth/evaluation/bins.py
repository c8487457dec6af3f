"""How a column is binned, and its bin code as one Spark SQL expression.

The evaluation bins a dozen columns into up to 30 bins each, several times per report. Built from ``Column``
methods, every literal, comparison and cast is one py4j round trip: thousands per report, most of a small
table's evaluation time. Written as SQL text, each column's code is one round trip, parsed on the JVM, where
its literals fold into constants. The text quotes every name and literal, so any column name and
any category (quotes, backslashes, line breaks) is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_synth.spark.schema import quoted
from spark_synth.spark.sql import double_literal, string_literal

# Bin codes shared by all column kinds; regular bins are 0, 1, 2, ...
NA_BIN = -1
OTHER_BIN = -2
EMPTY_BIN = -3

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_TEMPORAL = (T.DateType, T.TimestampType, T.TimestampNTZType)


@dataclass
class ColumnBins:
    """How one column is binned: quantile edges (numeric, temporal) or kept categories (the rest)."""

    name: str
    kind: str  # "numeric", "temporal" or "categorical"
    data_type: T.DataType
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


def column_kind(data_type: T.DataType) -> str:
    if isinstance(data_type, T.BooleanType):
        return "categorical"
    if isinstance(data_type, _NUMERIC):
        return "numeric"
    if isinstance(data_type, _TEMPORAL):
        return "temporal"
    return "categorical"


def aligned_sql(df: DataFrame, name: str, data_type: T.DataType) -> str:
    """The column as the real side's type, so that one bin expression serves both sides.

    A synthetic column of another type is converted the forgiving way (unparseable values become nulls),
    as mostlyai-qa coerces synthetic data to the training dtypes.
    """
    if df.schema[name].dataType == data_type:
        return quoted(name)
    return f"try_cast({quoted(name)} AS {data_type.simpleString()})"


def aligned(df: DataFrame, name: str, data_type: T.DataType) -> Column:
    """:func:`aligned_sql` as a Column."""
    return F.expr(aligned_sql(df, name, data_type))


def number_sql(source: str, bins: ColumnBins) -> str:
    """The value to bin on: a double for numbers (NaN as null), epoch microseconds for dates and times."""
    if bins.kind == "temporal":
        moment = source if isinstance(bins.data_type, T.TimestampType) else f"CAST({source} AS TIMESTAMP)"
        return f"CAST(unix_micros({moment}) AS DOUBLE)"
    number = f"CAST({source} AS DOUBLE)"
    return f"IF(isnan({number}), NULL, {number})"


def category_sql(source: str) -> str:
    """Categories compare as text, so booleans and exotic types bin the same way on both sides."""
    return f"CAST({source} AS STRING)"


def bin_sql(source: str, bins: ColumnBins, compact: bool = False) -> str:
    """The bin code of the SQL expression ``source``; the same text serves real and synthetic rows.

    The plain form writes one comparison per edge or category, the fastest per row. ``compact`` looks the value
    up in one literal map (categories) or array (edges) instead: with 30 bins on a dozen columns feeding one
    aggregation, the plain form's generated code outgrows the JVM's 64 KB method limit and Spark falls back to
    slow interpreted evaluation. Both give the same codes.
    """
    if bins.kind == "categorical":
        value = category_sql(source)
        special = f"WHEN {value} IS NULL THEN {NA_BIN} WHEN {value} = '' THEN {EMPTY_BIN}"
        if compact:
            pairs = ", ".join(f"{string_literal(c)}, {i}" for i, c in enumerate(bins.categories))
            found = f"map({pairs})[{value}]" if bins.categories else "NULL"
            return f"CASE {special} ELSE coalesce({found}, {OTHER_BIN}) END"
        regular = " ".join(f"WHEN {value} = {string_literal(c)} THEN {i}" for i, c in enumerate(bins.categories))
        return f"CASE {special} {regular} ELSE {OTHER_BIN} END"
    value = number_sql(source, bins)
    edges = [double_literal(e) for e in bins.edges]
    if not edges:
        inside = "0"
    elif compact:
        # the bin is the number of edges <= value (left-closed bins: a value equal to an edge belongs to the bin
        # above it); sorted in descending order with the value itself, the value first shows up right after the
        # edges greater than it (no lambda function: in wide projections that fell back from code generation,
        # Spark mixed up lambda variables of different columns)
        ranked = f"sort_array(concat(array({', '.join(edges)}), array({value})), false)"
        inside = f"CAST({len(edges)} - (array_position({ranked}, {value}) - 1) AS INT)"
    else:
        inside = " + ".join(f"CAST({value} >= {e} AS INT)" for e in edges)
    return f"CASE WHEN {value} IS NULL THEN {NA_BIN} ELSE {inside} END"


def bin_code(source: str, bins: ColumnBins, compact: bool = False) -> Column:
    """:func:`bin_sql` as a Column."""
    return F.expr(bin_sql(source, bins, compact))


def marginal_entries(marginals: list[tuple[int, ...]]) -> Column:
    """Each row of bin columns ``b0, b1, ...`` exploded into one struct (k, a, b, c) per marginal: its index and
    its one to three bin codes, unused ones 0. Counted in one group-by."""
    structs = []
    for k, columns in enumerate(marginals):
        parts = [f"b{i}" for i in columns] + ["0"] * (3 - len(columns))
        structs.append(f"named_struct('k', {k}, " + ", ".join(f"'{n}', {p}" for n, p in zip("abc", parts, strict=True))
                       + ")")
    return F.expr(f"explode(array({', '.join(structs)}))").alias("e")
