"""Per-column statistics with Spark aggregations, protected before they leave this module.

Four passes over the whole table, all in the JVM: an overview (counts, integrality, time of day),
value counts of low-cardinality columns, the few smallest and largest values of bounded columns
(each partition keeps its own, Spark merges them), and approximate quantiles for binned numbers.
Distinct counts, which Spark cannot compile into the overview's code, come from a probe of the
first rows, and over the whole table only for the columns that may be identifiers. Only aggregates
reach the driver. Unprotected intermediates (extremes, raw counts) live in local variables here
and are never returned.
"""

from __future__ import annotations

from collections import defaultdict
from functools import reduce
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_synth.encoding.choice import check_digits, digits_or_binned, first_choice, numeric_choice
from spark_synth.encoding.protect import K_MAX, K_MIN, draw_k, kept_categories, kth_bounds
from spark_synth.encoding.stats import ColumnStats, TableStats
from spark_synth.encoding.types import is_integer_type
from spark_synth.errors import SynthError
from spark_synth.spark.codes import micros
from spark_synth.spark.schema import ColumnPlan, plan_columns, quoted

# a numeric column with at most this many values held by K_MAX rows each is coded as categories: the largest k,
# not the column's secret k, so that a column near the limit is coded the same way in every training
MAX_DISCRETE = 100
DISCRETE_PROBE = 250  # ... and is counted value by value only when its first rows hold at most this many values
MAX_CATEGORIES = 10_000
N_QUANTILES = 100
KEY_DISTINCT_RATIO = 0.95
KEY_MIN_ROWS = 20
KEY_MAX_SPAN = 10  # integer ids span at most this many values per row
PROBE_ROWS = 10_000  # first rows whose distinct values rule columns out as identifiers or as discrete numbers
KEY_TYPES = ("string", "int", "bigint")


def col(name: str):
    return F.col(quoted(name))


def analyze(df: DataFrame, plans: list[ColumnPlan], source_name: str = "the input",
            unit: str | None = None) -> TableStats:
    """Protected statistics for every planned column, in table order.

    ``unit`` names the column that identifies whose row it is (the subject of an event log): then a
    category is kept only if enough distinct subjects hold it, and bounds are the k-th smallest of
    the subjects' minima and the k-th largest of their maxima, so one subject cannot set them.
    The flags ``has_nulls``, fractional numbers (not ``integral``) and ``has_time`` likewise need k rows
    (subjects): fewer nulls are not modelled, fewer fractions are rounded, fewer times of day dropped.

    Each column's k is secret (:func:`draw_k`): no seed plays a part in it, and k is never returned.
    """
    k = {p.name: draw_k() for p in plans}
    n_rows, overview = validated_overview(df, plans, source_name)
    flags = _subject_flags(df, plans, unit) if unit else {p.name: overview[p.name]["flags"] for p in plans}
    for p in plans:  # what one row (subject) alone shows is not a property of the column
        held = flags[p.name]
        overview[p.name]["has_nulls"] = held["null"] >= k[p.name]
        if "fractional" in held:
            overview[p.name]["integral"] = held["fractional"] < k[p.name]
        if "timed" in held:
            overview[p.name]["has_time"] = held["timed"] >= k[p.name]
    probed = _probe(df, [p for p in plans if p.encoding == "auto" and p.kind != "datetime"])
    keys = _keys(df, [p for p in plans if p.encoding == "auto"], n_rows, overview, probed)

    first = {p.name: first_choice(p.kind, p.encoding, p.name in keys) for p in plans}  # None: decided by the data
    integral = {p.name: bool(is_integer_type(p.spark_type) or overview[p.name].get("integral", False)) for p in plans}
    # a number with at most DISCRETE_PROBE values in its first rows may be discrete: decided by counting them all
    maybe_discrete = {p.name for p in plans if first[p.name] is None and p.encoding == "auto"
                      and probed[p.name][0] <= DISCRETE_PROBE}
    counted = [p for p in plans if first[p.name] == "categorical" or p.name in maybe_discrete]
    counts = _value_counts(df, counted, unit)
    kept = {p.name: kept_categories(counts.get(p.name, {}), k[p.name], MAX_CATEGORIES) for p in counted}
    encodings: dict[str, str] = {}
    columns: dict[str, dict[str, Any]] = {}
    for p in plans:
        discrete = p.name in maybe_discrete and 0 < sum(n >= K_MAX for n in counts[p.name].values()) <= MAX_DISCRETE
        encodings[p.name] = first[p.name] or numeric_choice(p.encoding, discrete, integral[p.name])
        check_digits(p.name, encodings[p.name], integral[p.name])
        if encodings[p.name] == "categorical":
            values = kept[p.name]
            kept_total = sum(counts[p.name][v] for v in values) if values else 0
            columns[p.name] = {"values": typed_values(values, p), "has_rare": kept_total < overview[p.name]["non_null"]}

    bounded = [p for p in plans if encodings[p.name] in ("digits", "binned", "datetime")]
    bounds = _bounds(df, bounded, k, unit)
    for p in bounded:
        if bounds[p.name] is None:
            raise SynthError(f"column '{p.name}' has fewer than {K_MAX} non-null values, too few to publish "
                             "protected bounds.", f"Exclude '{p.name}' or provide more rows.")
        lo, hi = bounds[p.name]
        encodings[p.name] = digits_or_binned(encodings[p.name], p.encoding, lo, hi)
        columns[p.name] = {"min": int(round(lo)) if encodings[p.name] != "binned" else lo,
                           "max": int(round(hi)) if encodings[p.name] != "binned" else hi}
        if encodings[p.name] == "datetime":
            columns[p.name]["has_time"] = bool(overview[p.name].get("has_time", False))
    binned = [p for p in plans if encodings[p.name] == "binned"]
    for name, (edges, points) in _quantiles(df, binned, bounds, n_rows, k).items():
        columns[name].update(edges=edges, point_masses=points, integral=integral[name])

    stats_columns = []
    for p in plans:
        entry = {"name": p.name, "spark_type": "string" if p.text_format else p.spark_type, "kind": p.kind,
                 "encoding": encodings[p.name], "has_nulls": bool(overview[p.name]["has_nulls"])}
        if p.text_format:
            entry["text_format"] = p.text_format
        entry.update(columns.get(p.name, {}))
        stats_columns.append(ColumnStats.from_json(entry))
    return TableStats(tuple(stats_columns), int(n_rows))


def validated_overview(df: DataFrame, plans: list[ColumnPlan], source_name: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Row count and per-column overview, refusing an empty table or a column of nulls only."""
    n_rows, overview = _overview(df, plans)
    if n_rows == 0:
        raise SynthError(f"{source_name} is empty (0 rows).", "Point --data at a table with rows.")
    all_null = [p.name for p in plans if overview[p.name]["non_null"] == 0]
    if all_null:
        raise SynthError(f"column(s) {all_null} hold only nulls, so nothing can be learned from them.",
                         "Exclude them: `columns: {NAME: {exclude: true}}` in the config.")
    return n_rows, overview


def identifier_columns(df: DataFrame) -> list[str]:
    """The columns training would take for identifiers (unique per row): regenerated as new keys rather
    than learned, so comparing their values with the real ones means nothing."""
    plans = plan_columns(df.schema, {})
    n_rows, overview = _overview(df, plans)
    return sorted(_keys(df, plans, n_rows, overview, _probe(df, plans)), key=df.columns.index)


def _probe(df: DataFrame, plans: list[ColumnPlan]) -> dict[str, tuple[int, int]]:
    """(distinct values, non-null values) of each column among the table's first PROBE_ROWS rows.

    A column's distinct count is at least its probe's, so the probe alone can rule a column out as a
    discrete number; an identifier shows a distinct value in almost every probed row.
    """
    if not plans:
        return {}
    first = df.select(*[col(p.name) for p in plans]).limit(PROBE_ROWS)
    row = first.agg(*[F.count_distinct(col(p.name)).alias(f"d{i}") for i, p in enumerate(plans)],
                    *[F.count(col(p.name)).alias(f"n{i}") for i, p in enumerate(plans)]).collect()[0]
    return {p.name: (int(row[f"d{i}"]), int(row[f"n{i}"])) for i, p in enumerate(plans)}


def _keys(df: DataFrame, plans: list[ColumnPlan], n_rows: int, overview: dict[str, dict[str, Any]],
          probed: dict[str, tuple[int, int]]) -> set[str]:
    """Identifier-like columns: (nearly) every row has its own value, none is null, and for integers the values
    are a dense range (ids with small gaps), so that a unique-valued measurement (a weight) stays a number.

    Only columns that pass on the overview and on the probe get a distinct estimate over the whole table.
    """
    candidates = [p for p in plans if p.spark_type in KEY_TYPES and n_rows >= KEY_MIN_ROWS
                  and overview[p.name]["non_null"] == n_rows
                  and (p.spark_type == "string" or overview[p.name]["span"] <= KEY_MAX_SPAN * n_rows)
                  and p.name in probed and probed[p.name][0] >= KEY_DISTINCT_RATIO * probed[p.name][1]]
    if not candidates:
        return set()
    row = df.agg(*[F.approx_count_distinct(col(p.name), 0.02).alias(f"d{i}") for i, p in enumerate(candidates)]).collect()[0]
    return {p.name for i, p in enumerate(candidates) if row[f"d{i}"] >= KEY_DISTINCT_RATIO * n_rows}


def _overview(df: DataFrame, plans: list[ColumnPlan]) -> tuple[int, dict[str, dict[str, Any]]]:
    """Row count, and per column: non-null count, span (integers), and ``flags``: how many rows are null,
    fractional, or at a time of day (raw counts, for :func:`analyze` to hold against k; never published).

    Every aggregate here compiles to code; one distinct estimate would make Spark interpret them all.
    """
    exprs = [F.count(F.lit(1)).alias("n")]
    for i, p in enumerate(plans):
        c = col(p.name)
        exprs.append(F.count(c).alias(f"nn{i}"))
        if p.spark_type in ("int", "bigint"):  # only to tell sequential ids from measurements; never stored
            exprs.append((F.max(c).cast("double") - F.min(c).cast("double") + 1).alias(f"span{i}"))
        exprs += [F.sum(F.when(cond, 1).otherwise(0)).alias(f"{flag}{i}")
                  for flag, cond in _flag_conditions(p).items() if flag != "null"]
    row = df.agg(*exprs).collect()[0].asDict()
    n_rows = int(row["n"])
    out: dict[str, dict[str, Any]] = {}
    for i, p in enumerate(plans):
        info: dict[str, Any] = {"non_null": int(row[f"nn{i}"])}
        if f"span{i}" in row:
            info["span"] = row[f"span{i}"]
        info["flags"] = {flag: n_rows - info["non_null"] if flag == "null" else int(row[f"{flag}{i}"] or 0)
                         for flag in _flag_conditions(p)}
        out[p.name] = info
    return n_rows, out


def _flag_conditions(p: ColumnPlan) -> dict[str, Column]:
    """Per row: is the value null, a fractional number (or too large to tell), a time other than midnight.

    Only the conditions that mean something for the column's type are given.
    """
    c = col(p.name)
    out = {"null": c.isNull()}
    if p.kind == "numeric" and not is_integer_type(p.spark_type):
        x = c.cast("double")  # huge magnitudes first: floor() of them would overflow a bigint
        out["fractional"] = (F.abs(x) >= 2**53) | (x != F.floor(x))
    if p.spark_type == "timestamp":
        out["timed"] = F.unix_micros(c) % 86_400_000_000 != 0
    elif p.spark_type == "timestamp_ntz":  # wall-clock fields: no session time zone involved
        out["timed"] = (F.hour(c) + F.minute(c) + F.second(c) + F.date_format(c, "SSSSSS").cast("int")) != 0
    return out


def _subject_flags(df: DataFrame, plans: list[ColumnPlan], unit: str) -> dict[str, dict[str, int]]:
    """Per column, how many distinct ``unit`` values (subjects) have a null, fractional or timed row: a
    subject counts once however many of its events show it, as for categories. One job."""
    if not plans:
        return {}
    conditions = [_flag_conditions(p) for p in plans]
    per_subject = df.groupBy(col(unit)).agg(
        *[F.max(F.when(cond, 1).otherwise(0)).alias(f"{flag}{i}")
          for i, flags in enumerate(conditions) for flag, cond in flags.items()])
    row = per_subject.agg(*[F.sum(F.col(f"{flag}{i}")).alias(f"{flag}{i}")
                            for i, flags in enumerate(conditions) for flag in flags]).collect()[0]
    return {p.name: {flag: int(row[f"{flag}{i}"] or 0) for flag in conditions[i]} for i, p in enumerate(plans)}


def _value_counts(df: DataFrame, plans: list[ColumnPlan], unit: str | None = None) -> dict[str, dict[Any, int]]:
    """Counts of every value held by at least K_MIN rows (or distinct units), top MAX_CATEGORIES per column, one job."""
    if not plans:
        return {}
    structs = []
    for i, p in enumerate(plans):
        numeric = p.kind == "numeric"
        structs.append(F.struct(
            F.lit(i).alias("i"),
            (F.lit(None).cast("string") if numeric else col(p.name).cast("string")).alias("s"),
            (col(p.name).cast("double") if numeric else F.lit(None).cast("double")).alias("d"),
        ))
    owner = [col(unit).alias("u")] if unit else []
    exploded = df.select(F.explode(F.array(*structs)).alias("e"), *owner).select("e.*", *(["u"] if unit else []))
    exploded = exploded.where(F.col("s").isNotNull() | F.col("d").isNotNull())
    if unit:  # a subject counts once per value, however many of its events hold it
        exploded = exploded.distinct().drop("u")
    grouped = exploded.groupBy("i", "s", "d").count().where(F.col("count") >= K_MIN)
    rank = F.row_number().over(Window.partitionBy("i").orderBy(F.desc("count"), "s", "d"))
    rows = grouped.withColumn("r", rank).where(F.col("r") <= MAX_CATEGORIES).collect()
    counts: dict[str, dict[Any, int]] = defaultdict(dict)
    for row in rows:
        value = row["d"] if row["s"] is None else row["s"]
        counts[plans[row["i"]].name][value] = int(row["count"])
    return counts


def typed_values(values: list[Any], p: ColumnPlan) -> list[Any]:
    if p.spark_type == "boolean":
        return [v == "true" for v in values]
    if p.kind == "numeric":
        return [int(v) if is_integer_type(p.spark_type) else float(v) for v in values]
    return values


def _bounds(df: DataFrame, plans: list[ColumnPlan], k: dict[str, int],
            unit: str | None = None) -> dict[str, tuple[float, float] | None]:
    """k-th smallest and largest per column: Spark's top-K (each partition keeps K_MAX, the driver picks).

    With a ``unit``, each unit first contributes only its own minimum (to the low side) and maximum.
    """
    if not plans:
        return {}
    values = [_ordinal(p) for p in plans]
    n = len(plans)
    if unit:  # one array column: every branch below reads the same aggregate, so Spark computes it once
        extremes = df.groupBy(col(unit)).agg(F.array(*[F.min(v) for v in values], *[F.max(v) for v in values]).alias("a"))
        low, high = [F.col("a")[j] for j in range(n)], [F.col("a")[n + j] for j in range(n)]
    else:
        extremes, low, high = df, values, values
    branches = []
    for j in range(n):
        for side, source in ((0, low[j]), (1, high[j])):
            x = extremes.select(source.alias("x")).where(F.col("x").isNotNull())
            ordered = x.orderBy(F.col("x") if side == 0 else F.col("x").desc()).limit(K_MAX)
            branches.append(ordered.select(F.lit(j).alias("j"), F.lit(side).alias("side"), "x"))
    lows: dict[int, list[float]] = defaultdict(list)
    highs: dict[int, list[float]] = defaultdict(list)
    for row in reduce(DataFrame.unionAll, branches).collect():
        (lows if row["side"] == 0 else highs)[row["j"]].append(float(row["x"]))
    return {p.name: kth_bounds(lows[j], highs[j], k[p.name]) for j, p in enumerate(plans)}


def _ordinal(p: ColumnPlan) -> Column:
    """The column as the numbers its bounds are stated in: epoch microseconds for dates and times."""
    return micros(col(p.name), p.spark_type).cast("double") if p.kind == "datetime" else col(p.name).cast("double")


def _quantiles(df: DataFrame, plans: list[ColumnPlan], bounds: dict[str, Any], n_rows: int,
               k: dict[str, int]) -> dict[str, tuple[list, list]]:
    """Up to ~100 equal-frequency bin edges per column, clipped to the protected bounds.

    Small tables get fewer bins, so every bin spans at least K_MAX rows. The outermost quantiles
    (the true extremes) are never used; a value repeated among the quantiles is a point mass only
    when the rows it spans reach the column's k.
    """
    if not plans:
        return {}
    n_bins = max(2, min(N_QUANTILES, n_rows // K_MAX))
    probabilities = [i / n_bins for i in range(1, n_bins)]
    exprs = [F.percentile_approx(col(p.name).cast("double"), probabilities, 10_000).alias(f"q{i}")
             for i, p in enumerate(plans)]
    row = df.agg(*exprs).collect()[0]
    out = {}
    for i, p in enumerate(plans):
        lo, hi = bounds[p.name]
        interior = np.clip(np.asarray(row[f"q{i}"] or [], dtype=np.float64), lo, hi)
        values, repeats = np.unique(interior, return_counts=True)
        points = [float(v) for v, r in zip(values, repeats, strict=True)
                  if r >= 2 and (r - 1) * n_rows / n_bins >= k[p.name] and lo <= v <= hi]
        edges = np.unique(np.concatenate([[lo], interior, [hi]]))
        out[p.name] = ([float(e) for e in edges], points)
    return out
