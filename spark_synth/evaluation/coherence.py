"""Coherence of behavioural logs (a subject table and its ordered events), Spark-native.

The figures follow ``mostlyai-qa``'s definition of ``accuracy.coherence`` so that they can be checked
against that referee. Each is 1 - total variation distance (TVD) between the real and the synthetic
binned distribution, averaged over the event columns:

- **consecutive pairs**: per subject, one pair of consecutive events (step t, step t + 1), t drawn
  uniformly from the subject's sequence (a subject with one event pairs it with "no next event", the
  n/a bin); the joint distribution of the two binned values, one pair per subject. Both sides draw with
  the same hash of the subject key, so identical data scores exactly 1.
- **distinct per subject**: per subject, the number of distinct categories (fine bins, see below) the
  column takes; the distribution of that number over subjects, in ``n_bins`` bins.
- **subjects per category**: per category, the number of subjects that have it at least once; the nine
  categories most subjects have (on the real side) are kept, the rest pooled into one "other" bin
  counted once per subject that has any of them; the distribution of those counts.

``coherence`` is the mean of the three, as mostlyai-qa aggregates it. The fine bins of the last two
figures are ``n_category_bins`` (30) quantile bins / top categories fitted on the real events after
keeping at most ``max_sequence_length`` (100) random events per subject; the consecutive pairs get
``n_bins`` (10) bins of their own, fitted on the real pairs (first and next value separately), exactly
as mostlyai-qa bins its ``tgt::``/``nxt::`` columns. Bins are always fitted on the real side.

``sequence_length`` (not part of coherence; mostlyai-qa scores it as a univariate column) is 1 - TVD of
the binned number of events per subject. With the subject-key DataFrames, subjects without events count
with length 0 (mostlyai-qa drops them: that variant is ``sequence_length_nonempty``), and the consecutive
pairs only use subjects present in the subject table, as mostlyai-qa does.

Every pass over the data is a Spark aggregation or window: only bin edges, categories, bin counts and
the histogram of sequence lengths (one count per distinct length) reach the driver. Per side, one window
over the events (partitioned by subject) feeds one grouping to a one-row-per-subject frame, which is
cached; the real events are cached too while the fine bins are fitted on them. Jobs per call: the fine
bins (a quantile and a top-category aggregation), one length histogram for both sides (which
materialises the subject frames), the pair / distinct-count bins (two aggregations over real subjects),
then one counting job each for the pairs and distinct counts, the categories, and the pooled categories,
every one covering both sides at once.

Not mirrored: mostlyai-qa replaces free-text columns (>5% unique values) by a random token per value
before binning; here such a column is binned like any other category column.
"""

from __future__ import annotations

import math

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_synth.evaluation.accuracy import MAX_SEARCH_POINTS, binned_accuracy, fit_bins, floor_breaks
from spark_synth.evaluation.bins import (
    EMPTY_BIN,
    NA_BIN,
    OTHER_BIN,
    ColumnBins,
    aligned,
    aligned_sql,
    bin_code,
    bin_sql,
    marginal_entries,
)
from spark_synth.spark.schema import quoted

# mostlyai-qa's constants for coherence: fine bins per column, events kept per subject, top categories.
N_CATEGORY_BINS = 30
MAX_SEQUENCE_LENGTH = 100
N_TOP_CATEGORIES = 9
LENGTH_QUANTILES = (0.5, 0.9)

# Internal column names (user columns are renamed c0, c1, ... so that no name can clash).
_KEY, _LEN, _IDX, _ORD, _PICK, _KEEP = "__key", "__len", "__idx", "__ord", "__pick", "__keep"
_IN_KEYS, _SIDE = "__in", "__side"  # in the subject table; 0 real, 1 synthetic
_MASK53 = (1 << 53) - 1
_UNORDERABLE = (T.MapType, T.ArrayType, T.StructType, T.BinaryType)


def _uniform(seed: int, *columns: Column) -> Column:
    """A pseudo-random number in [0, 1) from a hash: the same on both sides and whatever the partitioning."""
    return F.xxhash64(F.lit(seed), *columns).bitwiseAND(F.lit(_MASK53)).cast("double") / float(1 << 53)


def _persist(df: DataFrame) -> DataFrame:
    """Cache on the executors where the runtime allows it (serverless runtimes refuse)."""
    try:
        return df.persist(StorageLevel.MEMORY_AND_DISK)
    except Exception:  # noqa: BLE001 - caching is an optimisation only
        return df


def _unpersist(df: DataFrame) -> None:
    try:
        df.unpersist()
    except Exception:  # noqa: BLE001
        pass


def _windowed(
    events: DataFrame,
    foreign_key: str,
    columns: list[str],
    order_by: str | None,
    types: dict[str, T.DataType],
    seed: int,
    salt: int,
    max_sequence_length: int,
) -> DataFrame:
    """Events as (key, c0.., next values m0.., step, length, pick, keep), one window pass per subject.

    ``pick`` marks the first event of the subject's sampled consecutive pair; ``keep`` the (at most
    ``max_sequence_length``, random) events that the per-subject category figures use.
    """
    names = [f"c{i}" for i in range(len(columns))]
    select = [F.expr(f"CAST({quoted(foreign_key)} AS STRING) AS {_KEY}")]
    select += [aligned(events, c, types[c]).alias(n) for c, n in zip(columns, names, strict=True)]
    order: list[Column] = []
    if order_by is not None:
        if order_by in columns:
            order.append(F.col(names[columns.index(order_by)]))
        else:
            select.append(aligned(events, order_by, types[order_by]).alias(_ORD))
            order.append(F.col(_ORD))
    order += [
        F.col(n)
        for c, n in zip(columns, names, strict=True)
        if c != order_by and not isinstance(types[c], _UNORDERABLE)
    ]
    subject = Window.partitionBy(_KEY)
    ordered = subject.orderBy(*(order or [F.col(_KEY)]))
    df = events.select(*select).select(
        _KEY,
        *names,
        *[F.lead(n).over(ordered).alias(f"m{i}") for i, n in enumerate(names)],
        (F.row_number().over(ordered) - 1).alias(_IDX),
        F.count(F.lit(1)).over(subject).alias(_LEN),
    )
    # mostlyai-qa: the pair starts at a uniform step in [0, len - 2] (0 for a single event) ...
    start = F.floor((F.col(_LEN) - 1) * _uniform(seed, F.lit(salt), F.col(_KEY))).cast("long")
    # ... and at most max_sequence_length random events of a subject feed the category figures.
    shuffled = subject.orderBy(
        F.xxhash64(F.lit(seed + 1), F.lit(salt), F.col(_KEY), F.col(_IDX)), F.col(_IDX)
    )
    keep = (F.col(_LEN) <= max_sequence_length) | (F.row_number().over(shuffled) <= max_sequence_length)
    return df.select("*", (F.col(_IDX) == start).alias(_PICK), keep.alias(_KEEP))


def _count_codes(
    df: DataFrame, specs: list[ColumnBins], pairs: list[tuple[int, int]]
) -> list[dict[int, dict[tuple[int, int], int]]]:
    """Bin counts as in ``accuracy``, with the compact bin codes, for both sides at once (``__side`` 0/1).

    Returns, per side, every univariate (key = spec index) and pair (key = len(specs) + pair index) count.
    """
    binned = df.select(
        _SIDE, *[bin_code(aligned_sql(df, s.name, s.data_type), s, compact=True).alias(f"b{i}")
                 for i, s in enumerate(specs)]
    )
    n = len(specs)
    marginals: list[tuple[int, ...]] = [(i,) for i in range(n)] + list(pairs)
    counts = binned.select(_SIDE, marginal_entries(marginals)).groupBy(_SIDE, "e.k", "e.a", "e.b")
    out: list[dict[int, dict[tuple[int, int], int]]] = [
        {k: {} for k in range(n + len(pairs))} for _ in range(2)
    ]
    for r in counts.count().collect():
        out[r[_SIDE]][r["k"]][(r["a"], r["b"])] = r["count"]
    return out


def _subjects(windowed: DataFrame, fine: list[ColumnBins], keys: DataFrame | None, side: int) -> DataFrame:
    """One row per subject: side, length, whether it is in the subject table, the set of fine bins per
    column, and the sampled consecutive pair."""
    n = len(fine)
    pair = F.struct(
        *[F.col(f"c{i}").alias(f"a{i}") for i in range(n)], *[F.col(f"m{i}").alias(f"b{i}") for i in range(n)]
    )
    subjects = windowed.groupBy(_KEY).agg(
        F.max(_LEN).alias(_LEN),
        *[
            F.expr(f"collect_set(IF({_KEEP}, {bin_sql(quoted(s.name), s, compact=True)}, NULL)) AS s{i}")
            for i, s in enumerate(fine)
        ],
        F.first(F.when(F.col(_PICK), pair), ignorenulls=True).alias("pair"),
    )
    subjects = subjects.withColumn(_SIDE, F.lit(side))
    if keys is None:
        return subjects.withColumn(_IN_KEYS, F.lit(True))
    flagged = keys.select(_KEY, F.lit(True).alias(_IN_KEYS))
    return subjects.join(flagged, _KEY, "left").fillna(False, subset=[_IN_KEYS])


def _per_subject(subjects: DataFrame, n: int) -> DataFrame:
    """The subject frame flattened for binning: pair values a*/b*, distinct-bin counts d*.

    Pairs only count for subjects of the subject table: outside it they are nulls, which the bin fitting
    ignores (numbers) or ranks but never keeps (categories), and which ``_drop_outside_keys`` takes back
    out of the counts.
    """
    inside = F.col(_IN_KEYS)
    return subjects.select(
        _SIDE,
        *[F.when(inside, F.col(f"pair.a{i}")).alias(f"a{i}") for i in range(n)],
        *[F.when(inside, F.col(f"pair.b{i}")).alias(f"b{i}") for i in range(n)],
        *[F.size(f"s{i}").alias(f"d{i}") for i in range(n)],
    )


def _drop_outside_keys(counts: dict[int, dict[tuple[int, int], int]], n: int, outside: int) -> None:
    """Remove the subjects outside the subject table, one (n/a, n/a) pair each, from the pair counts."""
    if outside:
        for i in range(n):
            pair = counts[3 * n + i]
            pair[(NA_BIN, NA_BIN)] -= outside
            if pair[(NA_BIN, NA_BIN)] == 0:
                del pair[(NA_BIN, NA_BIN)]


def _category_counts(subjects: DataFrame, n: int) -> list[dict[int, dict[int, int]]]:
    """Per side and column: fine bin -> number of subjects having it (one job)."""
    sets = F.array(*[F.struct(F.lit(i).alias("k"), F.col(f"s{i}").alias("s")) for i in range(n)])
    entries = subjects.select(_SIDE, F.explode(sets).alias("e")).select(
        _SIDE, "e.k", F.explode("e.s").alias("a")
    )
    out: list[dict[int, dict[int, int]]] = [{i: {} for i in range(n)} for _ in range(2)]
    for r in entries.groupBy(_SIDE, "k", "a").count().collect():
        out[r[_SIDE]][r["k"]][r["a"]] = r["count"]
    return out


def _pooled_counts(subjects: DataFrame, kept: list[list[int]]) -> list[list[int]]:
    """Per side and column: number of subjects having at least one category outside ``kept`` (one job).

    (No lambda functions here or in the bin codes: in wide projections that fell back from code
    generation, Spark mixed up lambda variables of different columns and returned wrong values.)
    """
    aggs = []
    for i, codes in enumerate(kept):
        others = (
            F.array_except(F.col(f"s{i}"), F.array(*[F.lit(c) for c in codes])) if codes else F.col(f"s{i}")
        )
        aggs.append(F.sum((F.size(others) > 0).cast("long")).alias(f"p{i}"))
    out = [[0] * len(kept) for _ in range(2)]
    for row in subjects.groupBy(_SIDE).agg(*aggs).collect():
        out[row[_SIDE]] = [int(row[f"p{i}"] or 0) for i in range(len(kept))]
    return out


def _all_codes(spec: ColumnBins) -> list[int]:
    """Every bin of a column in mostlyai-qa's category order (regular bins, then the special ones)."""
    if spec.kind == "categorical":
        return list(range(len(spec.categories))) + [EMPTY_BIN, OTHER_BIN, NA_BIN]
    return list(range(len(spec.edges) + 1)) + [NA_BIN]


def _top_categories(spec: ColumnBins, counts: dict[int, int]) -> list[int]:
    """The N_TOP_CATEGORIES bins most subjects have; ties keep category order (pandas ``nlargest``)."""
    return sorted(_all_codes(spec), key=lambda c: -counts.get(c, 0))[:N_TOP_CATEGORIES]


def _length_histograms(
    subjects: DataFrame, keys: list[DataFrame | None]
) -> list[dict[tuple[bool, int], int]]:
    """Per side: (in subject table, sequence length) -> number of subjects (one job).

    Lengths are few distinct integers, so their exact histogram is small; with the subject keys, the keys
    without events count with length 0.
    """
    frames = []
    for side, side_keys in enumerate(keys):
        lengths = subjects.where(F.col(_SIDE) == side).select(_KEY, _LEN, _IN_KEYS)
        if side_keys is not None:
            empty = side_keys.join(lengths, _KEY, "left_anti")
            lengths = lengths.unionByName(
                empty.select(_KEY, F.lit(0).cast("long").alias(_LEN), F.lit(True).alias(_IN_KEYS))
            )
        frames.append(lengths.select(F.lit(side).alias(_SIDE), _LEN, _IN_KEYS))
    counts = frames[0].unionByName(frames[1]).groupBy(_SIDE, _IN_KEYS, _LEN).count()
    out: list[dict[tuple[bool, int], int]] = [{}, {}]
    for r in counts.collect():
        out[r[_SIDE]][(bool(r[_IN_KEYS]), int(r[_LEN]))] = int(r["count"])
    return out


def _sorted_hist(hist: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    values = np.array(sorted(hist), dtype=float)
    return values, np.cumsum([hist[int(v)] for v in values])


def _length_edges(hist: dict[int, int], n_bins: int) -> list[float]:
    """mostlyai-qa's numeric bins for a column of integers, exactly, from the column's histogram.

    One bin per value when there are at most ``n_bins`` of them; else its greedy search for ``n_bins + 1``
    distinct breaks among evenly spaced order statistics. Returns the inner edges (``ColumnBins.edges``).
    """
    values, cumulative = _sorted_hist(hist)
    if len(values) == 0:
        return []
    if len(values) <= n_bins:
        breaks = [*values.tolist(), values[-1] + 1]
    else:
        n_rows = int(cumulative[-1])
        breaks = []
        for points in range(n_bins, max(n_bins + 1, min(MAX_SEARCH_POINTS, n_rows + 1))):
            ranks = np.linspace(0, n_rows - 1, points).astype(int)
            breaks = sorted(set(values[np.searchsorted(cumulative, ranks, side="right")].tolist()))
            if len(breaks) >= n_bins + 1:
                break
    return floor_breaks(sorted(set(breaks)))[1:-1]


def _binned_lengths(hist: dict[int, int], edges: list[float]) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    for value, count in hist.items():
        code = int(np.searchsorted(np.array(edges), value, side="right"))  # edges <= value
        out[(code, 0)] = out.get((code, 0), 0) + count
    return out


def _length_accuracy(real: dict[int, int], synthetic: dict[int, int], n_bins: int) -> float:
    """1 - TVD of the binned length distributions, bins fitted on the real lengths."""
    edges = _length_edges(real, n_bins)
    return binned_accuracy(_binned_lengths(real, edges), _binned_lengths(synthetic, edges))


def _length_summary(hist: dict[tuple[bool, int], int]) -> dict:
    """Subjects, events, empty subjects, mean, exact quantiles (Spark's ``percentile``), max, orphan events."""
    listed = {length: c for (inside, length), c in hist.items() if inside}
    values, cumulative = _sorted_hist(listed)
    n = int(cumulative[-1]) if len(values) else 0
    summary: dict = {
        "subjects": n,
        "events": int(sum(length * c for length, c in listed.items())),
        "empty_subjects": int(listed.get(0, 0)),
        "mean": float(sum(length * c for length, c in listed.items()) / n) if n else math.nan,
    }
    for q in LENGTH_QUANTILES:
        if not n:
            summary[f"p{round(q * 100)}"] = math.nan
            continue
        position = q * (n - 1)  # linear interpolation between order statistics, as Spark's percentile
        lower = values[np.searchsorted(cumulative, math.floor(position), side="right")]
        upper = values[np.searchsorted(cumulative, math.ceil(position), side="right")]
        summary[f"p{round(q * 100)}"] = float(lower + (position - math.floor(position)) * (upper - lower))
    summary["max"] = int(values[-1]) if n else 0
    summary["orphan_events"] = int(sum(length * c for (inside, length), c in hist.items() if not inside))
    return summary


def _keys(keys: DataFrame | None, side: str) -> DataFrame | None:
    if keys is None:
        return None
    if len(keys.columns) != 1:
        raise ValueError(f"the {side} subject keys must be a DataFrame of one column, got {keys.columns}")
    return (
        keys.select(F.expr(f"CAST({quoted(keys.columns[0])} AS STRING) AS {_KEY}"))
        .where(F.col(_KEY).isNotNull())
        .distinct()
    )


def _validate(
    real: DataFrame, synthetic: DataFrame, foreign_key: str, columns: list[str] | None, order_by: str | None
) -> list[str]:
    for side, df in (("real", real), ("synthetic", synthetic)):
        if foreign_key not in df.columns:
            raise ValueError(f"foreign key {foreign_key!r} missing from the {side} events")
        if order_by is not None and order_by not in df.columns:
            raise ValueError(f"order_by column {order_by!r} missing from the {side} events")
    if columns is None:
        columns = [c for c in real.columns if c != foreign_key]
    columns = list(columns)
    missing = [c for c in columns if c not in real.columns or c not in synthetic.columns]
    if missing:
        raise ValueError(f"columns missing from the real or the synthetic events: {missing}")
    if foreign_key in columns:
        raise ValueError(f"the foreign key {foreign_key!r} cannot be one of the compared columns")
    if not columns:
        raise ValueError("no columns to compare")
    if len(set(columns)) != len(columns):
        raise ValueError(f"duplicate column names in {columns}")
    return columns


def coherence_summary(
    real_events: DataFrame,
    synthetic_events: DataFrame,
    foreign_key: str,
    columns: list[str] | None,
    order_by: str | None = None,
    real_subject_keys: DataFrame | None = None,
    synthetic_subject_keys: DataFrame | None = None,
    n_bins: int = 10,
    *,
    n_category_bins: int = N_CATEGORY_BINS,
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    seed: int = 0,
    independent_draws: bool = False,
) -> dict:
    """Coherence of synthetic event sequences against real ones (see the module docstring).

    ``foreign_key`` links each event to its subject; ``columns`` are the event columns to score (None: all
    but the key); events are ordered within a subject by ``order_by`` when given, then by the columns in
    the given order. ``real_subject_keys``/``synthetic_subject_keys`` (one column of subject keys each)
    let subjects without events count with length 0. ``seed`` picks the consecutive pair of each subject
    (and the events kept of sequences longer than ``max_sequence_length``), from a hash of the subject key:
    by default a subject key present on both sides draws the same step on both, so identical data scores
    exactly 1. ``independent_draws=True`` draws each side separately, as mostlyai-qa does; it matters only
    where the synthetic data shares subject keys with the real data (e.g. a holdout scored against a pool
    that contains it: on baseball, shared draws put the pair figure 0.004 above the referee's).

    Returns ``coherence``, ``consecutive_pairs``, ``distinct_per_subject``, ``subjects_per_category``,
    ``sequence_length``, ``sequence_length_nonempty``, ``per_column`` ({column: the three figures}),
    ``length_real``/``length_synthetic`` (subjects, events, empty_subjects, mean, p50, p90, max) and
    ``orphan_events`` (synthetic events whose key is not in the synthetic subject keys, when given).
    """
    columns = _validate(real_events, synthetic_events, foreign_key, columns, order_by)
    if n_bins < 1 or n_category_bins < 1 or max_sequence_length < 1:
        raise ValueError("n_bins, n_category_bins and max_sequence_length must be positive")
    if (real_subject_keys is None) != (synthetic_subject_keys is None):
        raise ValueError("pass subject keys for both sides or for neither")
    types = {c: real_events.schema[c].dataType for c in real_events.columns}
    n = len(columns)
    names = [f"c{i}" for i in range(n)]

    def windowed(events: DataFrame, side: int) -> DataFrame:
        salt = side if independent_draws else 0
        return _windowed(events, foreign_key, columns, order_by, types, seed, salt, max_sequence_length)

    cached: list[DataFrame] = []
    try:
        # each side's distinct keys are read twice: to flag the subjects in the table, to add the empty ones
        keys = [_keys(real_subject_keys, "real"), _keys(synthetic_subject_keys, "synthetic")]
        keys = [None if k is None else _persist(k) for k in keys]
        cached += [k for k in keys if k is not None]
        real_w = _persist(windowed(real_events, 0))
        cached.append(real_w)
        # fine bins for the category figures, on the (capped) real events
        fine = fit_bins(real_w.where(F.col(_KEEP)), names, n_category_bins, n_category_bins)
        subjects = [
            _persist(_subjects(real_w, fine, keys[0], 0)),
            _persist(_subjects(windowed(synthetic_events, 1), fine, keys[1], 1)),
        ]
        cached += subjects
        both = subjects[0].unionByName(subjects[1])

        # sequence lengths: one small histogram job, which also materialises both subject frames
        hists = _length_histograms(both, keys)
        for side, hist in zip(("real", "synthetic"), hists, strict=True):
            if not any(length for (inside, length) in hist if inside):
                raise ValueError(f"the {side} data has no events (of subjects in its subject keys)")
        _unpersist(real_w)
        cached.remove(real_w)

        # consecutive pairs (subjects of the subject table) and distinct categories per subject (every
        # subject with events): one fit on the real side, one count job for both sides
        per_subject = _per_subject(both, n)
        binned = [f"a{i}" for i in range(n)] + [f"b{i}" for i in range(n)] + [f"d{i}" for i in range(n)]
        specs = fit_bins(per_subject.where(F.col(_SIDE) == 0), binned, n_bins, n_bins)
        counts = _count_codes(per_subject, specs, [(i, n + i) for i in range(n)])
        for side in (0, 1):
            outside = sum(c for (inside, length), c in hists[side].items() if not inside)
            _drop_outside_keys(counts[side], n, outside)
        consecutive = [binned_accuracy(counts[0][3 * n + i], counts[1][3 * n + i]) for i in range(n)]
        distinct = [binned_accuracy(counts[0][2 * n + i], counts[1][2 * n + i]) for i in range(n)]

        # subjects per category: top categories of the real side, the rest pooled
        category = _category_counts(both, n)
        top = [_top_categories(fine[i], category[0][i]) for i in range(n)]
        kept = [[c for c in codes if c != OTHER_BIN] for codes in top]
        pooled = _pooled_counts(both, kept)
        per_category = []
        for i in range(n):
            real, syn = (
                {(c, 0): category[side][i].get(c, 0) for c in kept[i]} | {(OTHER_BIN, 0): pooled[side][i]}
                for side in (0, 1)
            )
            per_category.append(binned_accuracy(real, syn))
    finally:
        for df in cached:
            _unpersist(df)

    listed = [{length: c for (inside, length), c in hist.items() if inside} for hist in hists]
    nonempty = [{length: c for length, c in h.items() if length > 0} for h in listed]
    length_real, length_syn = _length_summary(hists[0]), _length_summary(hists[1])
    orphans = length_syn.pop("orphan_events")
    length_real.pop("orphan_events")
    figures = {
        "consecutive_pairs": float(np.mean(consecutive)),
        "distinct_per_subject": float(np.mean(distinct)),
        "subjects_per_category": float(np.mean(per_category)),
    }
    return {
        "coherence": float(np.mean(list(figures.values()))),
        **figures,
        "sequence_length": _length_accuracy(listed[0], listed[1], n_bins),
        "sequence_length_nonempty": _length_accuracy(nonempty[0], nonempty[1], n_bins),
        "per_column": {
            c: {
                "consecutive_pairs": consecutive[i],
                "distinct_per_subject": distinct[i],
                "subjects_per_category": per_category[i],
            }
            for i, c in enumerate(columns)
        },
        "length_real": length_real,
        "length_synthetic": length_syn,
        "length_histograms": {"real": listed[0], "synthetic": listed[1]},
        "orphan_events": orphans,
    }


def format_coherence(summary: dict) -> str:
    """A few lines for logs and the CLI: the figures, the weakest columns, the two length distributions."""
    lines = [
        f"coherence {summary['coherence']:.4f}  (consecutive pairs {summary['consecutive_pairs']:.4f}, "
        f"distinct per subject {summary['distinct_per_subject']:.4f}, "
        f"subjects per category {summary['subjects_per_category']:.4f})",
        f"sequence length {summary['sequence_length']:.4f}"
        + (
            f"  (subjects with events only {summary['sequence_length_nonempty']:.4f})"
            if summary["length_real"]["empty_subjects"] or summary["length_synthetic"]["empty_subjects"]
            else ""
        ),
    ]
    for side in ("real", "synthetic"):
        s = summary[f"length_{side}"]
        lines.append(
            f"  length {side:<9} mean {s['mean']:.2f}  p50 {s['p50']:g}  p90 {s['p90']:g}  max {s['max']}"
            f"  ({s['subjects']:,} subjects, {s['empty_subjects']:,} empty)"
        )
    per_column = {c: float(np.mean(list(v.values()))) for c, v in summary["per_column"].items()}
    weakest = sorted(per_column.items(), key=lambda kv: kv[1])[:3]
    if weakest:
        lines.append("least coherent columns: " + ", ".join(f"{c} {a:.4f}" for c, a in weakest))
    if summary.get("orphan_events"):
        lines.append(f"orphan synthetic events (key not in the subject table): {summary['orphan_events']:,}")
    return "\n".join(lines)
