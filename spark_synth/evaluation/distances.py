"""Distances between records: distance to closest record (DCR), NNDR and the DCR share, on samples.

Rows become points the way ``mostlyai-qa`` embeds them, so the figures can be checked against that
referee: numbers and dates through a quantile transform fitted on training + holdout (uniform on
[-0.5, 0.5], nulls at 0 plus a ±0.5 null flag), every row scaled to unit length. Where mostlyai-qa embeds
category labels with a language model, categories here are one-hot (the 50 most frequent, the rest one
"other" slot) scaled so that two different categories are 1 apart: no model to ship, and no notion that
"Married" is closer to "Divorced" than to "Never-married".

The DCR share (the share of synthetic rows closer to a training row than to a holdout row, ties halved)
is computed on all columns and, with more than ten columns, on three groups of correlated columns and
three random groups; the largest share is reported, as mostlyai-qa does: a leak that shows in a few
columns only is not averaged away. Correlated groups of fewer than three columns are skipped: on baseball
a (year, caught-stealing) pair scored 0.56 for a generator whose all-column share was 0.52, whose
membership audit gave AUC 0.50 and which copied no record; two columns measure marginal fit, not copying. Spark-free: the caller draws equal-size samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_CATEGORIES = 50
N_QUANTILES = 100
IDENTICAL = 1e-6  # DCR at or below this is an identical match
GROUPS_ABOVE = 10  # column count above which column groups are checked too
N_GROUPS = 3
# A group of one or two columns measures how closely the generator fits the training marginals, which it is
# trained to do, rather than whether it reproduces records: such correlated clusters are left out.
MIN_GROUP_COLUMNS = 3


@dataclass
class RecordEncoder:
    """Maps rows to points; fitted on the real rows (training + holdout samples)."""

    numeric: dict[str, np.ndarray] = field(default_factory=dict)  # column -> quantiles
    with_nulls: set[str] = field(default_factory=set)
    categories: dict[str, list[str]] = field(default_factory=dict)
    slices: dict[str, slice] = field(default_factory=dict)  # column -> its dimensions

    @classmethod
    def fit(cls, real: pd.DataFrame, kinds: dict[str, str], may_be_null: set[str]) -> RecordEncoder:
        """``kinds``: column -> "numeric" | "temporal" | "categorical"; ``may_be_null``: columns that get a
        null flag (nulls on any side, as the referee decides it)."""
        encoder = cls()
        start = 0
        for name, kind in kinds.items():
            if kind == "categorical":
                counts = _as_text(real[name]).value_counts()
                encoder.categories[name] = counts.index[:MAX_CATEGORIES].tolist()
                width = len(encoder.categories[name]) + 1
            else:
                values = _as_float(real[name])
                values = values[~np.isnan(values)]
                grid = np.linspace(0, 1, min(N_QUANTILES, max(len(values), 1)))
                encoder.numeric[name] = np.quantile(values, grid) if len(values) else np.zeros(1)
                width = 1
                if name in may_be_null:
                    encoder.with_nulls.add(name)
                    width = 2
            encoder.slices[name] = slice(start, start + width)
            start += width
        return encoder

    @property
    def width(self) -> int:
        return max((s.stop for s in self.slices.values()), default=0)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Points for ``frame``'s rows, each scaled to unit length."""
        out = np.zeros((len(frame), self.width))
        for name, where in self.slices.items():
            if name in self.categories:
                known = self.categories[name]
                index = pd.Index(known).get_indexer(_as_text(frame[name]))
                index[index < 0] = len(known)  # unseen or rare: the "other" slot
                out[np.arange(len(frame)), where.start + index] = np.sqrt(0.5)
                continue
            values = _as_float(frame[name])
            null = np.isnan(values)
            out[:, where.start] = np.where(null, 0.0, _uniform(self.numeric[name], values) - 0.5)
            if name in self.with_nulls:
                out[:, where.start + 1] = null.astype(float) - 0.5
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def _uniform(quantiles: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The empirical CDF through the quantiles (interpolated; ties get the mean of their positions)."""
    grid = np.linspace(0, 1, len(quantiles))
    if len(quantiles) < 2 or quantiles[0] == quantiles[-1]:
        return np.full(len(values), 0.5)
    up = np.interp(values, quantiles, grid)
    down = -np.interp(-values, -quantiles[::-1], -grid[::-1])
    return 0.5 * (up + down)


def _as_text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "\x00null").astype(str)


def _as_float(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        return np.where(series.isna(), np.nan, series.astype("int64").astype(float))
    return pd.to_numeric(series, errors="coerce").astype(float).to_numpy()


def closest(data: np.ndarray, query: np.ndarray, neighbours: int = 2) -> np.ndarray:
    """Distances from each query point to its ``neighbours`` nearest data points, nearest first."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=min(neighbours, len(data)), metric="euclidean", n_jobs=1).fit(data)
    distances, _ = index.kneighbors(query)
    return distances


def dcr_share(to_training: np.ndarray, to_holdout: np.ndarray) -> float:
    """Share of synthetic rows closer to training than to holdout, ties counted half: 0.5 is ideal."""
    return float(np.mean(to_training < to_holdout) + np.mean(to_training == to_holdout) / 2)


def nndr(distances: np.ndarray) -> np.ndarray:
    """Nearest-neighbour distance ratio: nearest / second nearest (near 0: a record with no peers)."""
    return (distances[:, 0] + 1e-8) / (distances[:, 1] + 1e-8)


def column_groups(points: np.ndarray, encoder: RecordEncoder, seed: int) -> list[list[str]]:
    """All columns; with more than ten, also three groups of correlated and three random groups."""
    names = list(encoder.slices)
    groups = [names]
    if len(names) <= GROUPS_ABOVE:
        return groups
    rng = np.random.default_rng(seed)
    shuffled = [names[i] for i in rng.permutation(len(names))]
    groups += [shuffled[i::N_GROUPS] for i in range(N_GROUPS)]
    groups += _correlated_groups(points, encoder, seed)
    return groups


def _correlated_groups(points: np.ndarray, encoder: RecordEncoder, seed: int) -> list[list[str]]:
    """Spectral clustering of the columns on their strongest absolute correlation between dimensions."""
    from sklearn.cluster import SpectralClustering

    names = list(encoder.slices)
    noisy = points + 1e-8 * np.random.default_rng(seed).standard_normal(points.shape)
    corr = np.nan_to_num(np.abs(np.corrcoef(noisy, rowvar=False)))
    affinity = np.array([[corr[encoder.slices[a], encoder.slices[b]].max() for b in names] for a in names])
    np.fill_diagonal(affinity, 1.0)
    try:
        labels = SpectralClustering(N_GROUPS, affinity="precomputed", random_state=seed).fit_predict(affinity)
    except ValueError:  # a degenerate affinity: the random groups still run
        return []
    groups = [[n for n, label in zip(names, labels, strict=True) if label == g] for g in range(N_GROUPS)]
    return [g for g in groups if len(g) >= MIN_GROUP_COLUMNS]


def distance_summary(
    synthetic: pd.DataFrame, training: pd.DataFrame, holdout: pd.DataFrame, kinds: dict[str, str], seed: int = 0
) -> dict:
    """DCR / NNDR figures of equal-size samples of synthetic, training and holdout rows.

    Returns shares of identical matches (synthetic to training, to holdout), mean DCRs, the DCR share
    (the largest over column groups), the 10th-smallest NNDR per side (mostlyai-qa's choice), and the
    distance arrays of the reported group for the histograms.
    """
    n = min(len(synthetic), len(training), len(holdout))
    if n < 2:
        raise ValueError("distances need at least two rows on every side")
    synthetic, training, holdout = (f.iloc[:n] for f in (synthetic, training, holdout))
    may_be_null = {c for c in kinds if any(f[c].isna().any() for f in (synthetic, training, holdout))}
    encoder = RecordEncoder.fit(pd.concat([training, holdout], ignore_index=True), kinds, may_be_null)
    syn, trn, hol = (encoder.transform(f) for f in (synthetic, training, holdout))

    best: dict | None = None
    for group in column_groups(np.vstack([trn, hol]), encoder, seed):
        dims = np.concatenate([np.arange(encoder.slices[c].start, encoder.slices[c].stop) for c in group])
        syn_trn, syn_hol = closest(trn[:, dims], syn[:, dims]), closest(hol[:, dims], syn[:, dims])
        share = dcr_share(syn_trn[:, 0], syn_hol[:, 0])
        if best is None:  # the first group holds all columns
            all_columns = share
        if best is None or share > best["share"]:
            trn_hol = closest(trn[:, dims], hol[:, dims])
            best = {"share": share, "columns": group, "syn_trn": syn_trn, "syn_hol": syn_hol, "trn_hol": trn_hol}
    assert best is not None
    syn_trn, syn_hol, trn_hol = best["syn_trn"], best["syn_hol"], best["trn_hol"]
    nndr_trn, nndr_hol = nndr(syn_trn), nndr(syn_hol)
    tenth = min(9, n - 1)
    return {
        "rows_per_side": n,
        "identical_training": float(np.mean(syn_trn[:, 0] <= IDENTICAL)),
        "identical_holdout": float(np.mean(syn_hol[:, 0] <= IDENTICAL)),
        "dcr_training": float(syn_trn[:, 0].mean()),
        "dcr_holdout": float(syn_hol[:, 0].mean()),
        "dcr_training_holdout": float(trn_hol[:, 0].mean()),
        "dcr_share": best["share"],
        "dcr_share_all_columns": all_columns,
        "nndr_training": float(np.sort(nndr_trn)[tenth]),
        "nndr_holdout": float(np.sort(nndr_hol)[tenth]),
        "group": best["columns"],
        "histograms": {"synthetic_to_training": syn_trn[:, 0], "synthetic_to_holdout": syn_hol[:, 0],
                       "holdout_to_training": trn_hol[:, 0]},
    }
