"""Value protection: the rules that keep rare values and extremes out of every saved statistic.

A category survives only if at least k rows (subjects) hold it; numeric and datetime bounds are
the k-th smallest and largest values, never the true extremes. k is drawn per column at random
in [K_MIN, K_MAX] so an attacker cannot know the exact threshold: from the operating system's
randomness, never from the run's seed (which the generator stores), and k itself is never saved.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

import numpy as np

K_MIN, K_MAX = 5, 7


def draw_k() -> int:
    """A protection threshold in [K_MIN, K_MAX], secret: drawn from OS randomness, so neither the stored
    seed nor anything else saved can recompute it (and a rerun draws anew)."""
    return K_MIN + secrets.randbelow(K_MAX - K_MIN + 1)


def allowed_codes(counts: np.ndarray, k: int) -> np.ndarray:
    """Which codes of one sub-column may be generated: those held by at least k rows (subjects).

    ``counts[c]`` is how many rows (distinct subjects) hold code c. A digit of one unique number is
    thus never generated. When no code reaches k (a tiny table), only the most frequent code stays
    (the lowest on a tie): a softmax needs one allowed code, and the most shared value is the one
    that says least about any single row, so the sub-column becomes constant.
    """
    counts = np.asarray(counts, dtype=np.float64)
    allowed = counts >= k
    if not allowed.any() and len(counts):
        allowed[int(np.argmax(counts))] = True
    return allowed


def kept_categories(counts: Mapping[object, int], k: int, max_categories: int) -> list[object]:
    """Categories held by at least k rows, at most ``max_categories`` of the most frequent, sorted."""
    frequent = [(c, v) for v, c in counts.items() if c >= k]
    frequent.sort(key=lambda cv: -cv[0])
    return sorted((v for _, v in frequent[:max_categories]), key=_sort_key)


def kth_bounds(smallest: Iterable[float], largest: Iterable[float], k: int) -> tuple[float, float] | None:
    """The k-th smallest and k-th largest of the candidate values (candidates gathered per partition).

    Returns None when there are fewer than k values: too few to publish any bound.
    """
    low = np.sort(np.asarray(list(smallest), dtype=np.float64))
    high = np.sort(np.asarray(list(largest), dtype=np.float64))[::-1]
    if len(low) < k or len(high) < k:
        return None
    lo, hi = float(low[k - 1]), float(high[k - 1])
    return (lo, hi) if lo <= hi else (hi, lo)


def pooled_counts(counts: list[float], k: int) -> list[float]:
    """A histogram over ordered bins (e.g. sequence lengths) in which every published count rests on k rows or more.

    A bin held by k rows or more stays. Runs of rarer bins are pooled from the top down until a pool holds k rows,
    and its rows are spread evenly over its bins; a run that ends short of k (at a frequent bin or at the bottom)
    adds its rows to the nearest published bin. The mass of a long tail of rare values is kept, where zeroing them
    would lose it.
    """
    out = [0.0] * len(counts)
    pending: list[int] = []
    nearest: list[int] = []  # the last published pool: where a short run's rows go

    def publish(pool: list[int], rows: float) -> None:
        for i in pool:
            out[i] += rows / len(pool)

    for index in range(len(counts) - 1, -1, -1):
        if counts[index] >= k:
            publish([index], counts[index] + sum(counts[i] for i in pending))  # a short run joins this bin
            nearest, pending = [index], []
            continue
        pending.append(index)
        if sum(counts[i] for i in pending) >= k:
            publish(pending, sum(counts[i] for i in pending))
            nearest, pending = pending, []
    if pending and nearest:
        publish(nearest, sum(counts[i] for i in pending))
    return out


def _sort_key(value: object) -> tuple[int, object]:
    return (0, value) if not isinstance(value, str) else (1, value)
