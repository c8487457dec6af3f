"""Univariate and bivariate accuracy (1 - total variation distance of binned marginals), Spark-native.

The figures follow the binning convention of ``mostlyai-qa`` so that they can be compared with that
referee, but every pass over the data is a Spark aggregation: only bin edges, top categories, the value
counts of columns with few values and bin counts ever reach the driver, so the summary scales with the
cluster, not with the driver's memory.

Jobs per call: up to three over the real data to fit the bins (:func:`fit_bins`), then one counting job
over both sides that yields every univariate and every pair count at once.
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spark_synth.evaluation.bins import (
    EMPTY_BIN,
    NA_BIN,
    OTHER_BIN,
    ColumnBins,
    aligned_sql,
    bin_code,
    category_sql,
    column_kind,
    marginal_entries,
    number_sql,
)
from spark_synth.spark.schema import quoted

# mostlyai-qa keeps a category as its own bin only when it occurs at least this often (privacy protection).
MIN_CATEGORY_COUNT = 5
# mostlyai-qa's greedy search for distinct quantile edges stops after this many grid points.
MAX_SEARCH_POINTS = 1000
# Marginals counted per job: a few dozen keep the exploded projection within Java's 64 KB method limit, so
# Spark compiles it instead of falling back to the interpreter (2x faster on 1M rows).
MARGINALS_PER_JOB = 40
# Numeric and temporal columns with at most about this many distinct values are binned from exact value counts
# (mostlyai-qa's edges exactly); only the others need percentile_approx over the grid below, the costly aggregation.
EXACT_DISTINCT = 5_000
# Distinct bin tuples (both sides) up to which the marginals are counted on the driver, from one collect of a few
# MB, instead of one Spark job per MARGINALS_PER_JOB marginals: on small tables those jobs cost seconds each.
DRIVER_TUPLES = 50_000
# Rank accuracy of percentile_approx (Spark's default): the error is at most 1/10_000 of the rows.
PERCENTILE_ACCURACY = 10_000
# The greedy edge search reads quantiles at exact fractions up to this many points (~12k fractions, enough to
# reproduce mostlyai-qa's edges on heavily tied columns such as capital gains), then from a 1/1000 grid.
EXACT_SEARCH_POINTS = 200
GRID_RESOLUTION = 1000

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


def floor_breaks(breaks: list[float]) -> list[float]:
    """Round breaks down to the fewest decimals that keep them distinct, as mostlyai-qa's bin labels do."""
    for precision in range(20):
        floored = [float(np.true_divide(np.floor(b * 10**precision), 10**precision)) for b in breaks]
        if len(set(floored)) == len(breaks):
            return floored[:-1] + [breaks[-1]]
    return breaks


def fit_bins(real: DataFrame, columns: list[str], n_bins: int, n_top: int) -> list[ColumnBins]:
    """Fit every column's bins on the real data.

    Up to three jobs: an overview of the numeric and temporal columns (count, distinct, range); the value counts
    of the categorical columns and of every numeric column with few distinct values, whose quantiles then are
    exact; quantiles at a grid of fractions for the rest only, the one costly aggregation.
    """
    specs = [ColumnBins(c, column_kind(real.schema[c].dataType), real.schema[c].dataType) for c in columns]
    numeric = [s for s in specs if s.kind != "categorical"]
    overview: dict[str, tuple[int, int, float | None, float | None]] = {}
    if numeric:
        aggs = []
        for i, spec in enumerate(numeric):
            value = number_sql(quoted(spec.name), spec)
            aggs += [F.expr(f"{agg}({value}) AS {name}{i}")
                     for agg, name in (("count", "n"), ("approx_count_distinct", "d"), ("min", "lo"), ("max", "hi"))]
        row = real.agg(*aggs).first()
        overview = {s.name: (row[f"n{i}"], row[f"d{i}"], row[f"lo{i}"], row[f"hi{i}"]) for i, s in enumerate(numeric)}
    counted = [s for s in numeric if overview[s.name][1] <= EXACT_DISTINCT]
    distinct = _value_counts(real, specs, counted, keep=n_top)
    # approx_count_distinct is a screen: a column whose count it underestimated past the cap takes the grid
    counted = [s for s in counted if len(distinct[s.name]) < 2 * EXACT_DISTINCT]
    fractions = _search_fractions(n_bins)
    quantiles = _grid_quantiles(real, [s for s in numeric if s not in counted], fractions)

    for spec in specs:
        if spec.kind == "categorical":
            ranked = sorted(distinct[spec.name], key=lambda t: (-t[2], t[0] is None, t[0] or ""))[:n_top]
            kept = [s for s, _, n in ranked if n >= MIN_CATEGORY_COUNT and s is not None and s != ""]
            spec.categories = sorted(kept)
            continue
        n_rows, _, lo, hi = overview[spec.name]
        if n_rows == 0:
            breaks: list[float] = []
        elif spec.kind == "temporal" and lo == hi:
            breaks = [lo]
        elif spec in counted:
            values, counts = zip(*sorted((d, n) for _, d, n in distinct[spec.name] if d is not None), strict=True)
            if spec.kind == "numeric" and len(values) <= n_bins:
                breaks = [*values, values[-1] + 1]
            else:
                breaks = _exact_breaks(np.array(values), np.array(counts), n_bins)
        else:
            breaks = _search_breaks(fractions, np.array(quantiles[spec.name], dtype=float), n_rows, n_bins)
        if spec.kind == "numeric" and breaks:
            breaks = floor_breaks(sorted(set(breaks)))
        spec.edges = breaks[1:-1]  # outer breaks only clip: values beyond them fall in the first/last bin
    return specs


def _value_counts(real: DataFrame, specs: list[ColumnBins], counted: list[ColumnBins],
                  keep: int) -> dict[str, list[tuple[str | None, float | None, int]]]:
    """(text, number, rows) of each value: the ``keep`` most frequent of every categorical column and all of every
    ``counted`` numeric one (at most 2 x EXACT_DISTINCT: what reaches the driver stays bounded), in one job."""
    distinct: dict[str, list[tuple[str | None, float | None, int]]] = {s.name: [] for s in specs}
    entries = [f"named_struct('k', {c}, 's', {category_sql(quoted(s.name))}, 'd', CAST(NULL AS DOUBLE))"
               for c, s in enumerate(specs) if s.kind == "categorical"]
    entries += [f"named_struct('k', {c}, 's', CAST(NULL AS STRING), 'd', {number_sql(quoted(s.name), s)})"
                for c, s in enumerate(specs) if s in counted]
    if not entries:
        return distinct
    everything = [c for c, s in enumerate(specs) if s in counted]  # isin([]) is simply false
    counts = real.select(F.expr(f"explode(array({', '.join(entries)})) AS e")).groupBy("e.k", "e.s", "e.d").count()
    rank = F.row_number().over(Window.partitionBy("k").orderBy(F.desc("count"), "s", "d"))
    wanted = F.col("rank") <= F.when(F.col("k").isin(everything), 2 * EXACT_DISTINCT).otherwise(keep)
    for r in counts.withColumn("rank", rank).where(wanted).collect():
        distinct[specs[r["k"]].name].append((r["s"], r["d"], r["count"]))
    return distinct


def _grid_quantiles(real: DataFrame, specs: list[ColumnBins], fractions: np.ndarray) -> dict[str, list[float] | None]:
    """Each column's approximate quantiles at ``fractions``, in one aggregation (skipped when there is none)."""
    if not specs:
        return {}
    # One foldable literal instead of ~12k lit() columns: building those over py4j takes seconds.
    grid = F.split(F.lit(",".join(repr(float(f)) for f in fractions)), ",").cast("array<double>")
    row = real.agg(*[F.percentile_approx(F.expr(number_sql(quoted(s.name), s)), grid, PERCENTILE_ACCURACY).alias(f"q{i}")
                     for i, s in enumerate(specs)]).first()
    return {s.name: row[f"q{i}"] for i, s in enumerate(specs)}


def _exact_breaks(values: np.ndarray, counts: np.ndarray, n_bins: int) -> list[float]:
    """mostlyai-qa's greedy search on the sorted rows, read from value counts: the row at position p holds the
    first value whose rows end after p."""
    ends = np.cumsum(counts)
    n_rows = int(ends[-1])
    breaks: list[float] = []
    for points in range(n_bins, max(n_bins + 1, min(MAX_SEARCH_POINTS, n_rows + 1))):
        positions = np.linspace(0, n_rows - 1, points).astype(int)
        breaks = sorted(set(values[np.searchsorted(ends, positions, side="right")].tolist()))
        if len(breaks) >= n_bins + 1:
            break
    return breaks


def _count_marginals(
    real: DataFrame, synthetic: DataFrame, specs: list[ColumnBins], marginals: list[tuple[int, ...]]
) -> list[list[dict[tuple[int, ...], int]]]:
    """Every marginal's bin counts, per side (0 real, 1 synthetic), from jobs over both sides at once.

    Rows are first grouped by their whole tuple of bin codes (many rows share one). Up to DRIVER_TUPLES distinct
    tuples are counted on the driver; beyond, each distinct tuple is exploded into one entry per marginal,
    weighted by its count: the explode, the costly part, runs over distinct tuples instead of rows, and only
    bin counts reach the driver.
    """
    bins = [f"b{i}" for i in range(len(specs))]

    def binned(df: DataFrame, side: int) -> DataFrame:
        return df.select(F.lit(side).alias("side"), *[
            bin_code(aligned_sql(df, s.name, s.data_type), s).alias(b) for s, b in zip(specs, bins, strict=True)])

    tuples = binned(real, 0).unionByName(binned(synthetic, 1)).groupBy("side", *bins).count()
    tuples = tuples.persist(StorageLevel.MEMORY_AND_DISK)
    out: list[list[dict[tuple[int, ...], int]]] = [[{} for _ in marginals] for _ in range(2)]
    try:
        few = tuples.limit(DRIVER_TUPLES + 1).toPandas()
        if len(few) <= DRIVER_TUPLES:  # all of them: counted here, in one job instead of one per chunk of marginals
            return _driver_marginals(few, len(specs), marginals)
        for first in range(0, len(marginals), MARGINALS_PER_JOB):
            chunk = marginals[first:first + MARGINALS_PER_JOB]
            counts = (tuples.select("side", "count", marginal_entries(chunk))
                      .groupBy("side", "e.k", "e.a", "e.b", "e.c").agg(F.sum("count").alias("n")))
            for r in counts.collect():
                k = first + r["k"]
                out[r["side"]][k][(r["a"], r["b"], r["c"])[:len(marginals[k])]] = int(r["n"])
    finally:
        tuples.unpersist()
    return out


def _driver_marginals(tuples: pd.DataFrame, n_columns: int,
                      marginals: list[tuple[int, ...]]) -> list[list[dict[tuple[int, ...], int]]]:
    """What the Spark path of :func:`_count_marginals` counts, from its distinct tuples collected to the driver:
    each marginal's bin codes packed into one integer key, then summed per key."""
    out: list[list[dict[tuple[int, ...], int]]] = [[{} for _ in marginals] for _ in range(2)]
    shift = -EMPTY_BIN  # the lowest bin code: shifted, every code is non-negative
    codes = tuples[[f"b{i}" for i in range(n_columns)]].to_numpy(np.int64) + shift
    radix = int(codes.max(initial=0)) + 1
    for side in (0, 1):
        mine = (tuples["side"] == side).to_numpy()
        side_codes, weights = codes[mine], tuples["count"].to_numpy(np.int64)[mine]
        for k, columns in enumerate(marginals):
            keys = np.zeros(len(side_codes), dtype=np.int64)
            for i in columns:
                keys = keys * radix + side_codes[:, i]
            unique, inverse = np.unique(keys, return_inverse=True)
            sums = np.bincount(inverse, weights=weights, minlength=len(unique))
            for key, n in zip(unique.tolist(), sums.tolist(), strict=True):
                digits = []
                for _ in columns:
                    key, digit = divmod(key, radix)
                    digits.append(digit - shift)
                out[side][k][tuple(reversed(digits))] = int(n)
    return out


def binned_accuracy(real_counts: dict, syn_counts: dict) -> float:
    """1 - TVD between two binned distributions given as counts."""
    n_real, n_syn = sum(real_counts.values()), sum(syn_counts.values())
    keys = set(real_counts) | set(syn_counts)
    l1 = sum(abs(real_counts.get(k, 0) / n_real - syn_counts.get(k, 0) / n_syn) for k in keys)
    return 1.0 - 0.5 * l1


def expected_accuracy(real_counts: dict, n_other: int) -> float:
    """The accuracy a sample of ``n_other`` rows drawn from the real distribution itself would reach on
    average (a same-size holdout): the ceiling that sampling noise leaves. Normal approximation of each
    bin's |difference| of two binomial frequencies, as mostlyai-qa's ``accuracy_max``."""
    n_real = sum(real_counts.values())
    p = np.array(list(real_counts.values()), dtype=np.float64) / n_real
    l1 = np.sum(np.sqrt(p * (1 - p) * (1 / n_real + 1 / n_other) * 2 / np.pi))
    return float(1.0 - l1 / 2)


def select_marginals(
    n: int, targets: list[int], max_pairs: int | None, max_triples: int, seed: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """Pairs with at least one target column (all columns are targets for a flat table) and triples of
    targets; a random subset (by ``seed``) where there are more than the caps."""
    target = set(targets)
    pairs = [p for p in itertools.combinations(range(n), 2) if p[0] in target or p[1] in target]
    rng = random.Random(seed)
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = sorted(rng.sample(pairs, max_pairs))
    triples: list[tuple[int, int, int]] = []
    if max_triples > 0:
        candidates = list(itertools.combinations(sorted(target), 3))
        triples = sorted(rng.sample(candidates, min(max_triples, len(candidates))))
    return pairs, triples


def _check_columns(real: DataFrame, synthetic: DataFrame, columns: list[str] | None) -> list[str]:
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
    return columns


def accuracy_summary(
    real: DataFrame,
    synthetic: DataFrame,
    columns: list[str] | None = None,
    n_bins: int = 10,
    n_top: int = 10,
    seed: int = 0,
    max_pairs: int | None = 1000,
    max_triples: int = 0,
    targets: list[str] | None = None,
) -> dict:
    """Accuracy of ``synthetic`` against ``real``: 1 - total variation distance of binned distributions.

    Returns ``univariate``, ``bivariate`` and ``trivariate`` (means over columns, column pairs and sampled
    column triples; NaN where there is none), ``overall`` (their mean), ``expected`` (the same figures for
    a sample of the real distribution as large as the synthetic data: the ceiling), ``per_column``,
    ``per_pair`` ("a|b"), ``per_triple`` ("a|b|c"), ``distributions`` (each column's bin labels and both
    sides' frequencies), ``association`` (Cramér's V of every scored pair, both sides) and the row counts.

    Numeric, date and timestamp columns get up to ``n_bins`` quantile bins fitted on the real data; other
    columns keep their ``n_top`` most frequent real categories and pool the rest; nulls always get a bin of
    their own. With ``targets``, only those columns are scored on their own and in triples, and pairs need
    one of them (the others are context, e.g. a subject's attributes beside its event). At most
    ``max_pairs`` pairs and ``max_triples`` triples are scored, drawn by ``seed``.
    """
    columns = _check_columns(real, synthetic, columns)
    if n_bins < 1 or n_top < 1:
        raise ValueError("n_bins and n_top must be positive")
    targets = columns if targets is None else targets
    if not set(targets) <= set(columns):
        raise ValueError(f"targets {sorted(set(targets) - set(columns))} are not among the columns")
    target_index = [columns.index(c) for c in targets]

    specs = fit_bins(real, columns, n_bins, n_top)
    pairs, triples = select_marginals(len(columns), target_index, max_pairs, max_triples, seed)
    marginals: list[tuple[int, ...]] = [(i,) for i in target_index] + pairs + triples
    real_counts, syn_counts = _count_marginals(real, synthetic, specs, marginals)
    for side, counts in (("real", real_counts), ("synthetic", syn_counts)):
        if not counts[0]:
            raise ValueError(f"the {side} data has no rows")
    n_real, n_syn = sum(real_counts[0].values()), sum(syn_counts[0].values())

    def name(marginal: tuple[int, ...]) -> str:
        return "|".join(columns[i] for i in marginal)

    scored = {name(m): (binned_accuracy(r, s), expected_accuracy(r, n_syn))
              for m, r, s in zip(marginals, real_counts, syn_counts, strict=True)}
    per_column = {columns[i]: scored[columns[i]][0] for i in target_index}
    per_pair = {name(p): scored[name(p)][0] for p in pairs}
    per_triple = {name(t): scored[name(t)][0] for t in triples}

    def mean(group: list[tuple[int, ...]], which: int) -> float:
        return float(np.mean([scored[name(m)][which] for m in group])) if group else math.nan

    groups = {"univariate": [(i,) for i in target_index], "bivariate": pairs, "trivariate": triples}
    figures = {key: mean(group, 0) for key, group in groups.items()}
    expected = {key: mean(group, 1) for key, group in groups.items()}
    present = [v for v in figures.values() if not math.isnan(v)]
    expected_present = [v for v in expected.values() if not math.isnan(v)]
    position = {m: k for k, m in enumerate(marginals)}
    return {
        **figures,
        "overall": float(np.mean(present)),
        "expected": {**expected, "overall": float(np.mean(expected_present))},
        "per_column": per_column,
        "per_pair": per_pair,
        "per_triple": per_triple,
        "distributions": {
            columns[i]: _distribution(specs[i], real_counts[position[(i,)]], syn_counts[position[(i,)]])
            for i in target_index
        },
        "association": {
            name(p): (cramers_v(real_counts[position[p]]), cramers_v(syn_counts[position[p]])) for p in pairs
        },
        "rows": {"real": n_real, "synthetic": n_syn},
    }


def cramers_v(counts: dict[tuple[int, int], int]) -> float:
    """Cramér's V of a two-way table given as counts: 0 independent, 1 one column determines the other."""
    rows = sorted({a for a, _ in counts})
    cols = sorted({b for _, b in counts})
    if len(rows) < 2 or len(cols) < 2:
        return 0.0
    table = np.zeros((len(rows), len(cols)))
    for (a, b), n in counts.items():
        table[rows.index(a), cols.index(b)] = n
    total = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / total
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    return float(np.sqrt(chi2 / (total * (min(table.shape) - 1))))


def _distribution(spec: ColumnBins, real: dict, synthetic: dict) -> dict:
    """One column's bins in display order with readable labels and both sides' frequencies."""
    codes = sorted(set(real) | set(synthetic), key=lambda c: (c[0] < 0, -c[0] if c[0] < 0 else c[0]))
    n_real, n_syn = sum(real.values()), sum(synthetic.values())
    return {
        "kind": spec.kind,
        "labels": [bin_label(spec, code[0]) for code in codes],
        "real": [real.get(c, 0) / n_real for c in codes],
        "synthetic": [synthetic.get(c, 0) / n_syn for c in codes],
    }


def bin_label(spec: ColumnBins, code: int) -> str:
    """A bin as a reader sees it: the category, or the value range between quantile edges."""
    if code == NA_BIN:
        return "(null)"
    if code == OTHER_BIN:
        return "(other)"
    if code == EMPTY_BIN:
        return "(empty)"
    if spec.kind == "categorical":
        return spec.categories[code]
    edges = [_edge_text(spec, e) for e in spec.edges]
    if not edges:
        return "all"
    if code == 0:
        return f"< {edges[0]}"
    if code >= len(edges):
        return f"≥ {edges[-1]}"
    return f"{edges[code - 1]} – {edges[code]}"


def _edge_text(spec: ColumnBins, edge: float) -> str:
    if spec.kind == "temporal":
        import datetime as dt

        moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=edge)
        return moment.date().isoformat() if moment.time() == dt.time() else moment.isoformat(sep=" ")
    return f"{edge:g}"


def format_summary(summary: dict) -> str:
    """A few lines for logs and the CLI: the overall figures and where the synthetic data is weakest."""
    figures = [f"{key} {summary[key]:.4f}" for key in ("univariate", "bivariate", "trivariate")
               if not math.isnan(summary[key])]
    lines = [f"accuracy  {'  '.join(figures)}  (a same-size holdout: {summary['expected']['overall']:.4f})"]
    weakest = sorted(summary["per_column"].items(), key=lambda kv: kv[1])[:3]
    if weakest:
        lines.append("weakest columns: " + ", ".join(f"{c} {a:.4f}" for c, a in weakest))
    if summary.get("per_pair"):
        c, a = min(summary["per_pair"].items(), key=lambda kv: kv[1])
        lines.append(f"weakest pair: {c} {a:.4f}")
    return "\n".join(lines)
