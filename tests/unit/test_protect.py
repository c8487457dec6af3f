"""Value protection rules: thresholds, kept categories and k-th bounds."""

from __future__ import annotations

import numpy as np

from spark_synth.encoding.protect import (
    K_MAX,
    K_MIN,
    draw_k,
    kept_categories,
    kth_bounds,
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
    values = np.sort(np.concatenate([np.arange(100.0), [1e9, -1e9]]))
    lo, hi = kth_bounds(values[:K_MAX], values[::-1][:K_MAX], 5)  # what Spark's top-K queries return
    assert (lo, hi) == (3.0, 96.0)  # 5th smallest of {-1e9, 0, 1, ...}; 5th largest of {1e9, 99, ...}


def test_too_few_values_publish_no_bounds() -> None:
    assert kth_bounds([1.0, 2.0], [2.0, 1.0], 5) is None

