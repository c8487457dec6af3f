"""Value protection rules: thresholds, kept categories and k-th bounds."""

from __future__ import annotations

import numpy as np

from spark_synth.encoding.protect import (
    K_MAX,
    K_MIN,
    draw_k,
    kept_categories,
    kth_bounds,
    smallest_and_largest,
)


def test_k_is_reproducible_and_within_range() -> None:
    ks = [draw_k(seed, i) for seed in range(20) for i in range(10)]
    assert set(ks) <= set(range(K_MIN, K_MAX + 1)) and len(set(ks)) > 1
    assert draw_k(3, 4) == draw_k(3, 4)


def test_categories_below_k_are_dropped_and_capped() -> None:
    counts = {"a": 100, "b": 6, "c": 4, "d": 1}
    assert kept_categories(counts, 5, 10) == ["a", "b"]
    assert kept_categories(counts, 5, 1) == ["a"]
    assert kept_categories({1.0: 9, -2.0: 9}, 5, 10) == [-2.0, 1.0]


def test_kth_bounds_ignore_the_true_extremes() -> None:
    values = np.concatenate([np.arange(100.0), [1e9, -1e9]])
    low, high = smallest_and_largest(values, K_MAX)
    lo, hi = kth_bounds(low, high, 5)
    assert (lo, hi) == (3.0, 96.0)  # 5th smallest of {-1e9, 0, 1, ...}; 5th largest of {1e9, 99, ...}


def test_too_few_values_publish_no_bounds() -> None:
    assert kth_bounds([1.0, 2.0], [2.0, 1.0], 5) is None


def test_partition_candidates_merge_to_the_global_answer() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=10_000)
    parts = np.array_split(data, 7)
    low = np.concatenate([smallest_and_largest(p, K_MAX)[0] for p in parts])
    high = np.concatenate([smallest_and_largest(p, K_MAX)[1] for p in parts])
    ordered = np.sort(data)
    assert kth_bounds(low, high, 6) == (ordered[5], ordered[-6])
