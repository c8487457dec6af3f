"""Univariate and bivariate accuracy (1 - total variation distance of binned marginals), Spark-native.

The figures follow the binning convention of ``mostlyai-qa`` so that they can be compared with that
referee, but every pass over the data is a Spark aggregation: only bin edges, top categories and bin
counts ever reach the driver, so the summary scales with the cluster, not with the driver's memory.

Jobs per call: one aggregation over the real data for all quantile edges, one for the top categories
(skipped when nothing needs it), then one counting job per side that yields every univariate and every
pair count at once.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_synth.schema import quoted

# Bin codes shared by all column kinds; regular bins are 0, 1, 2, ...
NA_BIN = -1
OTHER_BIN = -2
EMPTY_BIN = -3

# mostlyai-qa keeps a category as its own bin only when it occurs at least this often (privacy protection).
MIN_CATEGORY_COUNT = 5
# mostlyai-qa's greedy search for distinct quantile edges stops after this many grid points.
MAX_SEARCH_POINTS = 1000
# Rank accuracy of percentile_approx (Spark's default): the error is at most 1/10_000 of the rows.
PERCENTILE_ACCURACY = 10_000
# The greedy edge search reads quantiles at exact fractions up to this many points (~12k fractions, enough to
# reproduce mostlyai-qa's edges on heavily tied columns such as capital gains), then from a 1/1000 grid.
EXACT_SEARCH_POINTS = 200
GRID_RESOLUTION = 1000

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_TEMPORAL = (T.DateType, T.TimestampType, T.TimestampNTZType)


@dataclass
class _ColumnBins:
    """How one column is binned: quantile edges (numeric, temporal) or kept categories (the rest)."""

    name: str
    kind: str  # "numeric", "temporal" or "categorical"
    data_type: T.DataType
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


def _col(name: str) -> Column:
    """A top-level column by name, safe for names with dots or spaces."""
    return F.col(quoted(name))


def _kind(data_type: T.DataType) -> str:
    if isinstance(data_type, T.BooleanType):
        return "categorical"
    if isinstance(data_type, _NUMERIC):
        return "numeric"
    if isinstance(data_type, _TEMPORAL):
        return "temporal"
    return "categorical"


def _aligned(df: DataFrame, name: str, data_type: T.DataType) -> Column:
    """The column as the real side's type, so that one bin expression serves both sides.

    A synthetic column of another type is converted the forgiving way (unparseable values become nulls),
    as mostlyai-qa coerces synthetic data to the training dtypes.
    """
    if df.schema[name].dataType == data_type:
        return _col(name)
    quoted = "`" + name.replace("`", "``") + "`"
    return F.expr(f"try_cast({quoted} AS {data_type.simpleString()})")


def _as_number(column: Column, bins: _ColumnBins) -> Column:
    """Numeric value to bin on: doubles for numbers (NaN as null), epoch microseconds for dates and times."""
    if bins.kind == "temporal":
        as_ts = column if isinstance(bins.data_type, T.TimestampType) else column.cast("timestamp")
        return F.unix_micros(as_ts).cast("double")
    value = column.cast("double")
    return F.when(~F.isnan(value), value)


def _as_category(column: Column) -> Column:
    """Categories compare as text, so booleans and exotic types bin the same way on both sides."""
    return column.cast("string")


def _bin_expr(column: Column, bins: _ColumnBins) -> Column:
    """The bin code of each value; the same expression is applied to real and synthetic rows."""
    if bins.kind == "categorical":
        value = _as_category(column)
        code = F.when(value.isNull(), F.lit(NA_BIN)).when(value == "", F.lit(EMPTY_BIN))
        for i, category in enumerate(bins.categories):
            code = code.when(value == category, F.lit(i))
        return code.otherwise(F.lit(OTHER_BIN))
    value = _as_number(column, bins)
    inside = F.lit(0)
    for edge in bins.edges:  # left-closed bins: a value equal to an edge belongs to the bin above it
        inside = inside + (value >= F.lit(float(edge))).cast("int")
    return F.when(value.isNull(), F.lit(NA_BIN)).otherwise(inside)


def _search_fractions(n_bins: int) -> np.ndarray:
    """Quantile fractions to ask Spark for: exact ones for the first search steps, then a fine grid."""
    fractions = {j / GRID_RESOLUTION for j in range(GRID_RESOLUTION + 1)}
    for points in range(max(n_bins, 2), max(n_bins + 1, EXACT_SEARCH_POINTS) + 1):
        fractions.update(k / (points - 1) for k in range(points))
    return np.array(sorted(fractions))


def _search_breaks(fractions: np.ndarray, quantiles: np.ndarray, n_rows: int, n_bins: int) -> list[float]:
    """mostlyai-qa's greedy search: more evenly spaced quantiles until ``n_bins + 1`` distinct breaks appear.

    Needed for tied columns (e.g. mostly zeros), where plain deciles collapse into one or two bins.
    """
    breaks: list[float] = []
    for points in range(n_bins, max(n_bins + 1, min(MAX_SEARCH_POINTS, n_rows + 1))):
        wanted = np.linspace(0.0, 1.0, points) if points > 1 else np.zeros(1)
        nearest = np.clip(np.searchsorted(fractions, wanted), 1, len(fractions) - 1)
        left_closer = (wanted - fractions[nearest - 1]) <= (fractions[nearest] - wanted)
        nearest = np.where(left_closer, nearest - 1, nearest)
        breaks = sorted(set(quantiles[nearest].tolist()))
        if len(breaks) >= n_bins + 1:
            break
    return breaks


def _floor_breaks(breaks: list[float]) -> list[float]:
    """Round breaks down to the fewest decimals that keep them distinct, as mostlyai-qa's bin labels do."""
    for precision in range(20):
        floored = [float(np.true_divide(np.floor(b * 10**precision), 10**precision)) for b in breaks]
        if len(set(floored)) == len(breaks):
            return floored[:-1] + [breaks[-1]]
    return breaks


def _fit_bins(real: DataFrame, columns: list[str], n_bins: int, n_top: int) -> list[_ColumnBins]:
    """Fit every column's bins on the real data: one quantile aggregation, one top-category job."""
    specs = [_ColumnBins(c, _kind(real.schema[c].dataType), real.schema[c].dataType) for c in columns]
    numeric = [s for s in specs if s.kind != "categorical"]
    fractions = _search_fractions(n_bins)

    stats: dict[str, tuple[list[float] | None, int, int, float | None, float | None]] = {}
    if numeric:
        # One foldable literal instead of ~12k lit() columns: building those over py4j takes seconds.
        grid = F.split(F.lit(",".join(repr(float(f)) for f in fractions)), ",").cast("array<double>")
        aggs = []
        for i, spec in enumerate(numeric):
            value = _as_number(_col(spec.name), spec)
            aggs += [
                F.percentile_approx(value, grid, PERCENTILE_ACCURACY).alias(f"q{i}"),
                F.count(value).alias(f"n{i}"),
                F.approx_count_distinct(value).alias(f"d{i}"),
                F.min(value).alias(f"lo{i}"),
                F.max(value).alias(f"hi{i}"),
            ]
        row = real.agg(*aggs).first()
        for i, spec in enumerate(numeric):
            stats[spec.name] = (row[f"q{i}"], row[f"n{i}"], row[f"d{i}"], row[f"lo{i}"], row[f"hi{i}"])

    # Exact distinct values are needed where a numeric column may have <= n_bins of them (each its own bin);
    # approx_count_distinct is only a screen, so the threshold leaves a wide margin.
    low_card = [s for s in specs if s.kind == "numeric" and stats[s.name][2] <= 2 * n_bins + 10]
    categorical = [s for s in specs if s.kind == "categorical"]
    distinct: dict[str, list[tuple[str | None, float | None, int]]] = {s.name: [] for s in specs}
    if categorical or low_card:
        entries = [
            F.struct(
                F.lit(c).alias("k"),
                _as_category(_col(s.name)).alias("s"),
                F.lit(None).cast("double").alias("d"),
            )
            for c, s in enumerate(specs)
            if s.kind == "categorical"
        ] + [
            F.struct(
                F.lit(c).alias("k"),
                F.lit(None).cast("string").alias("s"),
                _as_number(_col(s.name), s).alias("d"),
            )
            for c, s in enumerate(specs)
            if s in low_card
        ]
        counts = real.select(F.explode(F.array(*entries)).alias("e")).groupBy("e.k", "e.s", "e.d").count()
        keep = max(n_top, 2 * n_bins + 10)
        rank = F.row_number().over(Window.partitionBy("k").orderBy(F.desc("count"), "s", "d"))
        for r in counts.withColumn("rank", rank).where(F.col("rank") <= keep).collect():
            distinct[specs[r["k"]].name].append((r["s"], r["d"], r["count"]))

    for spec in specs:
        if spec.kind == "categorical":
            ranked = sorted(distinct[spec.name], key=lambda t: (-t[2], t[0] is None, t[0] or ""))[:n_top]
            kept = [s for s, _, n in ranked if n >= MIN_CATEGORY_COUNT and s is not None and s != ""]
            spec.categories = sorted(kept)
            continue
        quantiles, n_rows, _, lo, hi = stats[spec.name]
        values = sorted(d for _, d, _ in distinct[spec.name] if d is not None)
        if n_rows == 0 or quantiles is None:
            breaks: list[float] = []
        elif spec.kind == "temporal" and lo == hi:
            breaks = [lo]
        elif spec.kind == "numeric" and spec in low_card and len(values) <= n_bins:
            breaks = values + [values[-1] + 1]
        else:
            breaks = _search_breaks(fractions, np.array(quantiles, dtype=float), n_rows, n_bins)
        if spec.kind == "numeric" and breaks:
            breaks = _floor_breaks(sorted(set(breaks)))
        spec.edges = breaks[1:-1]  # outer breaks only clip: values beyond them fall in the first/last bin
    return specs


def _count_bins(
    df: DataFrame, specs: list[_ColumnBins], pairs: list[tuple[int, int]]
) -> dict[int, dict[tuple[int, int], int]]:
    """Every univariate (key = column index) and pair (key = n_columns + pair index) count in one job."""
    binned = df.select(
        *[_bin_expr(_aligned(df, s.name, s.data_type), s).alias(f"b{i}") for i, s in enumerate(specs)]
    )
    n = len(specs)
    counts = binned.select(F.explode(F.array(*marginal_entries(n, pairs))).alias("e")).groupBy("e.k", "e.a", "e.b").count()
    out: dict[int, dict[tuple[int, int], int]] = {k: {} for k in range(n + len(pairs))}
    for r in counts.collect():
        out[r["k"]][(r["a"], r["b"])] = r["count"]
    return out


def marginal_entries(n: int, pairs: list[tuple[int, int]]) -> list:
    """One struct per marginal of a row of bin columns ``b0..b{n-1}``: (key, bin a, bin b), univariate
    marginals keyed 0..n-1 (b = 0) and pairs keyed n + pair index; exploded, then counted in one group-by."""
    entries = [F.struct(F.lit(i).alias("k"), F.col(f"b{i}").alias("a"), F.lit(0).alias("b")) for i in range(n)]
    entries += [F.struct(F.lit(n + p).alias("k"), F.col(f"b{i}").alias("a"), F.col(f"b{j}").alias("b"))
                for p, (i, j) in enumerate(pairs)]
    return entries


def _accuracy(real_counts: dict[tuple[int, int], int], syn_counts: dict[tuple[int, int], int]) -> float:
    """1 - TVD between two binned distributions given as counts."""
    n_real, n_syn = sum(real_counts.values()), sum(syn_counts.values())
    keys = set(real_counts) | set(syn_counts)
    l1 = sum(abs(real_counts.get(k, 0) / n_real - syn_counts.get(k, 0) / n_syn) for k in keys)
    return 1.0 - 0.5 * l1


def accuracy_summary(
    real: DataFrame,
    synthetic: DataFrame,
    columns: list[str] | None = None,
    n_bins: int = 10,
    n_top: int = 10,
    seed: int = 0,
    max_pairs: int | None = 1000,
) -> dict:
    """Accuracy of ``synthetic`` against ``real``: 1 - total variation distance of binned distributions.

    Returns ``{"univariate", "bivariate", "per_column": {col: acc}, "per_pair": {"a|b": acc}}``; the overall
    figures are means over columns and over unordered column pairs (NaN when there is no pair). Numeric,
    date and timestamp columns get up to ``n_bins`` quantile bins fitted on the real data; other columns
    keep their ``n_top`` most frequent real categories and pool the rest; nulls always get a bin of their own.
    With more than ``max_pairs`` pairs, a random subset (by ``seed``) is scored to bound the counting job.
    """
    if columns is None:
        only_real = [c for c in real.columns if c not in synthetic.columns]
        only_syn = [c for c in synthetic.columns if c not in real.columns]
        if only_real or only_syn:
            raise ValueError(
                f"columns present on one side only: real-only {only_real}, synthetic-only {only_syn}; "
                "select the same columns on both sides or pass `columns=`"
            )
        columns = list(real.columns)
    else:
        missing = [c for c in columns if c not in real.columns or c not in synthetic.columns]
        if missing:
            raise ValueError(f"columns missing from the real or the synthetic data: {missing}")
    if not columns:
        raise ValueError("no columns to compare")
    if len(set(columns)) != len(columns):
        raise ValueError(f"duplicate column names in {columns}")
    if n_bins < 1 or n_top < 1:
        raise ValueError("n_bins and n_top must be positive")

    specs = _fit_bins(real, columns, n_bins, n_top)
    pairs = list(itertools.combinations(range(len(columns)), 2))
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = sorted(random.Random(seed).sample(pairs, max_pairs))
    real_counts = _count_bins(real, specs, pairs)
    syn_counts = _count_bins(synthetic, specs, pairs)
    for side, counts in (("real", real_counts), ("synthetic", syn_counts)):
        if not counts[0]:
            raise ValueError(f"the {side} data has no rows")

    n = len(columns)
    per_column = {c: _accuracy(real_counts[i], syn_counts[i]) for i, c in enumerate(columns)}
    per_pair = {
        f"{columns[i]}|{columns[j]}": _accuracy(real_counts[n + p], syn_counts[n + p])
        for p, (i, j) in enumerate(pairs)
    }
    return {
        "univariate": float(np.mean(list(per_column.values()))),
        "bivariate": float(np.mean(list(per_pair.values()))) if per_pair else math.nan,
        "per_column": per_column,
        "per_pair": per_pair,
    }


def format_summary(summary: dict) -> str:
    """A few lines for logs and the CLI: the overall figures and where the synthetic data is weakest."""
    lines = [f"accuracy  univariate {summary['univariate']:.4f}  bivariate {summary['bivariate']:.4f}"]
    weakest = sorted(summary["per_column"].items(), key=lambda kv: kv[1])[:3]
    if weakest:
        lines.append("weakest columns: " + ", ".join(f"{c} {a:.4f}" for c, a in weakest))
    if summary.get("per_pair"):
        c, a = min(summary["per_pair"].items(), key=lambda kv: kv[1])
        lines.append(f"weakest pair: {c} {a:.4f}")
    return "\n".join(lines)
