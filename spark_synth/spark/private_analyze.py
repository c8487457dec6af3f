"""Differentially private per-column statistics on Spark: noisy histograms, released above a threshold.

The DP twin of :func:`spark_synth.spark.analyze.analyze`, returning statistics in the same format, so
the codecs and the model do not know whether DP was used. One Spark job: every histogram of every
column in one group-by, Gaussian noise added on the executors, and only the partitions above the
threshold collected.

Sensitivity. A flat row adds 1 to one partition of each histogram of its columns. For an event
log (``unit`` = the subject column), a subject contributes one partition per histogram: one of its
distinct values (or bins), drawn at random, so however many events it has, it moves every
histogram by at most 1. Decisions that exact statistics would make from the data (nulls present,
identifiers, integral numbers, times of day) are made from the schema or from released counts.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_synth.encoding.choice import digits_or_binned, first_choice, numeric_choice
from spark_synth.encoding.stats import ColumnStats, TableStats
from spark_synth.encoding.types import is_integer_type
from spark_synth.privacy import histograms as H
from spark_synth.privacy.histograms import BINNED, EXACT, histograms_of
from spark_synth.spark.analyze import MAX_CATEGORIES, MAX_DISCRETE, N_QUANTILES, col, typed_values
from spark_synth.spark.schema import ColumnPlan, quoted

logger = logging.getLogger(__name__)


def private_statistics(df: DataFrame, plans: list[ColumnPlan], noise_std: float, threshold: float,
                       noisy_rows: float | None, unit: str | None = None,
                       noisy_units: float | None = None) -> TableStats:
    """DP statistics for every planned column, in the format of ``analyze``.

    ``noisy_rows`` is the already-released noisy number of rows, stored as ``n_rows`` (None for events);
    ``noisy_units`` the noisy number of rows or subjects contributing to each histogram (default
    ``noisy_rows``): what the released partitions leave of it tells whether rare values exist.
    """
    released = released_partitions(df, plans, noise_std, threshold, unit)
    total = noisy_units if noisy_units is not None else noisy_rows
    columns = []
    for i, p in enumerate(plans):
        entry: dict[str, Any] = {"name": p.name, "spark_type": "string" if p.text_format else p.spark_type,
                                 "kind": p.kind}
        if p.text_format:
            entry["text_format"] = p.text_format
        entry.update(_column_stats(p, released[i]))
        if "has_rare" in entry and entry["values"] and total is not None:  # post-processing of released counts
            unexplained = total - sum(released[i]["exact"].values()) - (released[i]["null"] or 0.0)
            entry["has_rare"] = bool(unexplained > threshold)
        columns.append(entry)
    return TableStats(tuple(ColumnStats.from_json(c) for c in columns),
                      None if noisy_rows is None else max(int(round(noisy_rows)), 0), private=True)


def released_partitions(df: DataFrame, plans: list[ColumnPlan], noise_std: float, threshold: float,
                        unit: str | None = None) -> list[dict[str, dict]]:
    """Per column: {"exact": {value: noisy count}, "bins": {bin code: noisy count}, "null": noisy count or None}."""
    out: list[dict[str, Any]] = [{"exact": {}, "bins": {}, "null": None} for _ in plans]
    if not any(histograms_of(p) for p in plans):  # e.g. a subject table of keys only: nothing to release
        return out
    for row in noisy_counts(df, plans, noise_std, unit).where(F.col("noisy") >= threshold).collect():
        entry = out[row["i"]]
        if row["isnull"]:
            entry["null"] = float(row["noisy"])
        elif row["f"] == BINNED:
            entry["bins"][int(row["d"])] = float(row["noisy"])
        else:
            entry["exact"][row["d"] if row["s"] is None else row["s"]] = float(row["noisy"])
    return out


def noisy_counts(df: DataFrame, plans: list[ColumnPlan], noise_std: float, unit: str | None = None) -> DataFrame:
    """Every partition that occurs, with its exact and noisy count (a lazy frame: training collects only the
    rows above the threshold)."""
    structs = []
    for i, p in enumerate(plans):
        for family in histograms_of(p):
            structs.append(_partition(i, p, family))
    owner = [col(unit).alias("u")] if unit else []
    rows = df.select(F.expr(f"explode(array({', '.join(structs)}))").alias("e"), *owner).where(F.col("e").isNotNull())
    rows = rows.select("e.*", *(["u"] if unit else []))
    if unit:  # one partition per subject and histogram, drawn at random among the subject's own
        salt = secrets.randbits(62)
        pick = Window.partitionBy("u", "i", "f").orderBy(F.xxhash64(F.lit(salt), "s", "d", "isnull"))
        rows = rows.distinct().withColumn("r", F.row_number().over(pick)).where(F.col("r") == 1).drop("r", "u")
    counted = rows.groupBy("i", "f", "s", "d", "isnull").count()
    noisy = counted.withColumn("noisy", released_count(F.col("count"), noise_std))
    top = Window.partitionBy("i", "f").orderBy(F.desc("noisy"))
    return noisy.withColumn("rank", F.row_number().over(top)).where(F.col("rank") <= MAX_CATEGORIES).drop("rank")


def released_count(count: Column, noise_std: float) -> Column:
    """A partition's released count: the exact count plus Gaussian noise drawn on the executors from a secret
    seed. The only place an exact histogram count is turned into something that may leave."""
    return count + F.lit(float(noise_std)) * F.randn(secrets.randbits(62))


def _partition(i: int, p: ColumnPlan, family: int) -> str:
    """The struct (i, f, s, d, isnull) of the partition a row's value falls in, as SQL text (one round trip)."""
    c = quoted(p.name)
    if family == EXACT and p.kind == "categorical":
        s, d = f"CAST({c} AS STRING)", "CAST(NULL AS DOUBLE)"
    elif family == EXACT:
        s, d = "CAST(NULL AS STRING)", f"CAST({c} AS DOUBLE)"
    else:
        x = (f"CAST({c} AS DOUBLE)" if p.kind == "numeric" else
             f"(unix_micros(CAST({c} AS TIMESTAMP)) / {H.MICROS_PER_DAY} - {H.DATE_ORIGIN_DAYS})")
        s, d = "CAST(NULL AS STRING)", _bin_code(x)
    include_null = family == EXACT or p.kind == "datetime"  # a column's nulls are counted in one histogram
    isnull = f"({c} IS NULL)" if include_null else "false"
    row = (f"named_struct('i', {i}, 'f', {family}, 's', CASE WHEN NOT {isnull} THEN {s} END, "
           f"'d', CASE WHEN NOT {isnull} THEN {d} END, 'isnull', {isnull})")
    return row if include_null else f"CASE WHEN {c} IS NOT NULL THEN {row} END"


def _bin_code(x: str) -> str:
    """Spark twin of :func:`spark_synth.privacy.histograms.bin_code`, as SQL text."""
    exponent = (f"least(greatest(floor({H.BINS_PER_OCTAVE} * log2(abs({x}))), {H.MIN_EXPONENT}), "
                f"{H.MAX_EXPONENT})")
    return f"CAST(CASE WHEN {x} = 0 THEN 0.0D ELSE signum({x}) * ({H.BIN_OFFSET} + {exponent}) END AS DOUBLE)"


def _column_stats(p: ColumnPlan, released: dict[str, Any]) -> dict[str, Any]:
    exact, bins = released["exact"], released["bins"]
    has_nulls = released["null"] is not None
    integral = is_integer_type(p.spark_type)  # from the schema: the data's own integrality is not released
    encoding = first_choice(p.kind, p.encoding) or numeric_choice(
        p.encoding, H.is_discrete(exact, bins, MAX_DISCRETE), integral)
    if encoding == "key":
        return {"encoding": "key", "has_nulls": False}
    if encoding == "categorical":
        values = sorted(exact, key=lambda v: (isinstance(v, str), v))
        return {"encoding": "categorical", "has_nulls": has_nulls, "values": typed_values(values, p), "has_rare": True}
    span = H.bounds(bins, exact if p.kind == "numeric" else None)
    if span is None:  # nothing is held by enough rows to publish even a range: generated as null
        logger.warning(f"column '{p.name}': no value range is held by enough rows for DP statistics at this "
              "epsilon; it will be generated as nulls.")
        return {"encoding": "categorical", "has_nulls": True, "values": [], "has_rare": True}
    lo, hi = span
    if encoding == "datetime":
        return {"encoding": "datetime", "has_nulls": has_nulls, "min": H.days_to_micros(lo),
                "max": H.days_to_micros(hi), "has_time": p.spark_type != "date"}
    if integral:
        lo, hi = float(np.floor(lo)), float(np.ceil(hi))
    encoding = digits_or_binned(encoding, p.encoding, lo, hi)
    if encoding == "digits":
        return {"encoding": "digits", "has_nulls": has_nulls, "min": int(lo), "max": int(hi)}
    total = sum(bins.values())
    points = [v for v in H.point_masses(exact, total, N_QUANTILES) if lo <= v <= hi]
    return {"encoding": "binned", "has_nulls": has_nulls, "min": lo, "max": hi,
            "edges": H.quantile_edges(bins, lo, hi, N_QUANTILES), "point_masses": points, "integral": integral}

