"""DP statistics from noisy histograms: partition selection, bounds, quantile edges (no Spark here).

Every column is summarised by histograms whose partitions are either exact values (categories,
and numbers for the discrete/point-mass decision) or logarithmic bins of numbers and dates.
Each row (or each subject, for an event log) adds 1 to at most one partition per histogram;
Gaussian noise of std ``sigma`` is added to every partition that occurs in the data, and only
partitions whose noisy count reaches ``selection_threshold`` are released. A partition that only
one subject holds therefore stays hidden except with probability at most the selection delta.

Log bins: ``BINS_PER_OCTAVE`` per factor of two, symmetric around zero, with zero its own bin,
so they cover any magnitude without knowing the data. Dates use days from ``DATE_ORIGIN``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a plan is read, never built here: this module stays free of Spark
    from spark_synth.spark.schema import ColumnPlan

import math
from statistics import NormalDist

import numpy as np

BINS_PER_OCTAVE = 8
MIN_EXPONENT, MAX_EXPONENT = -30 * BINS_PER_OCTAVE, 1024 * BINS_PER_OCTAVE - 1  # smaller magnitudes share the lowest bin
BIN_OFFSET = 10_000  # bin code = sign * (BIN_OFFSET + exponent index); 0 is the exact zero
DATE_ORIGIN_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
MICROS_PER_DAY = 86_400_000_000
DISCRETE_COVERAGE = 0.9  # a number is discrete when its released exact values hold this share of the mass


def selection_threshold(sigma: float, selection_delta: float, partitions_per_subject: int) -> float:
    """The noisy count a partition must reach to be released.

    A partition held by one subject has true count 1; each subject touches at most
    ``partitions_per_subject`` partitions over all histograms, so the chance that any of them is
    released is at most ``selection_delta``.
    """
    tail = selection_delta / max(partitions_per_subject, 1)
    return 1.0 + sigma * NormalDist().inv_cdf(1.0 - tail)


def bin_code(x: np.ndarray) -> np.ndarray:
    """Signed log-bin code of each value (numpy twin of the Spark expression in ``private_stats``)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        exponent = np.floor(BINS_PER_OCTAVE * np.log2(np.abs(x)))
    exponent = np.clip(np.nan_to_num(exponent, neginf=MIN_EXPONENT), MIN_EXPONENT, MAX_EXPONENT)
    return np.where(x == 0, 0, np.sign(x) * (BIN_OFFSET + exponent)).astype(np.int64)


def bin_range(code: int) -> tuple[float, float]:
    """The interval [low, high] a bin code covers."""
    if code == 0:
        return 0.0, 0.0
    exponent = abs(code) - BIN_OFFSET
    low, high = 2.0 ** (exponent / BINS_PER_OCTAVE), 2.0 ** ((exponent + 1) / BINS_PER_OCTAVE)
    return (low, high) if code > 0 else (-high, -low)


def bounds(bins: dict[int, float], exact: dict[float, float] | None = None) -> tuple[float, float] | None:
    """The range covered by the released bins (and exact values), or None when nothing was released."""
    ranges = [bin_range(c) for c in bins]
    points = list((exact or {}).keys())
    lows = [r[0] for r in ranges] + points
    highs = [r[1] for r in ranges] + points
    if not lows:
        return None
    return float(min(lows)), float(max(highs))


def is_discrete(exact: dict[float, float], bins: dict[int, float], max_values: int) -> bool:
    """Few released exact values that hold most of the released mass: code the number as categories."""
    if not exact or len(exact) > max_values:
        return False
    return sum(exact.values()) >= DISCRETE_COVERAGE * max(sum(bins.values()), 1e-9)


def quantile_edges(bins: dict[int, float], low: float, high: float, n_bins: int) -> list[float]:
    """Up to ``n_bins`` equal-mass bin edges from the released bins' noisy counts, within [low, high].

    Inside a log bin the mass is spread geometrically (uniformly in log scale), as the bins are.
    """
    items = sorted((bin_range(c), max(v, 0.0)) for c, v in bins.items())
    total = sum(v for _, v in items)
    edges = [low, high]
    if total <= 0:
        return sorted(set(edges))
    cumulative = 0.0
    targets = iter(i * total / n_bins for i in range(1, n_bins))
    target = next(targets, None)
    for (lo, hi), mass in items:
        while target is not None and cumulative + mass >= target and mass > 0:
            share = (target - cumulative) / mass
            edges.append(_interpolate(lo, hi, share))
            target = next(targets, None)
        cumulative += mass
    return sorted({float(np.clip(e, low, high)) for e in edges})


def point_masses(exact: dict[float, float], total: float, n_bins: int) -> list[float]:
    """Exact values heavy enough to fill a quantile bin on their own (e.g. the zeros of an amount)."""
    return sorted(float(v) for v, c in exact.items() if c >= total / n_bins)


def _interpolate(lo: float, hi: float, share: float) -> float:
    if lo == hi:
        return lo
    if lo > 0:
        return lo * (hi / lo) ** share
    if hi < 0:
        return -((-hi) * ((-lo) / (-hi)) ** (1 - share))
    return lo + (hi - lo) * share


def days_to_micros(days: float) -> int:
    return int(round((days + DATE_ORIGIN_DAYS) * MICROS_PER_DAY))


def noise_std(noise_multiplier: float, l2_sensitivity_squared: int) -> float:
    """Std of the Gaussian noise on every partition: multiplier times the L2 sensitivity of all histograms."""
    return noise_multiplier * math.sqrt(l2_sensitivity_squared)


EXACT, BINNED = 0, 1  # histogram families


def histograms_of(plan: ColumnPlan) -> tuple[int, ...]:
    """The histograms a column is summarised by (each costs one unit of squared L2 sensitivity)."""
    if plan.encoding == "key":
        return ()
    if plan.kind == "datetime":
        return (BINNED,)
    if plan.kind == "categorical" or plan.encoding == "categorical":
        return (EXACT,)
    return (EXACT, BINNED)


def partitions_per_subject(plans: list[ColumnPlan]) -> int:
    return sum(len(histograms_of(p)) for p in plans)
