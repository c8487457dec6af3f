"""Value protection rules: thresholds, kept categories and k-th bounds."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from spark_synth.encoding.protect import (
    K_MAX,
    K_MIN,
    allowed_codes,
    draw_k,
    kept_categories,
    kth_bounds,
    pooled_counts,
)


def test_k_is_secret_and_within_range() -> None:
    """k takes no seed (nothing stored can recompute it) and still covers the whole range."""
    assert inspect.signature(draw_k).parameters == {}
    ks = [draw_k() for _ in range(300)]
    assert set(ks) == set(range(K_MIN, K_MAX + 1))


def test_k_does_not_follow_numpy_or_python_seeds() -> None:
    import random

    draws = []
    for _ in range(2):
        random.seed(0)
        np.random.seed(0)
        draws.append([draw_k() for _ in range(40)])
    assert draws[0] != draws[1]  # 3**-40 chance of a false failure


def test_codes_below_k_rows_are_not_allowed() -> None:
    assert allowed_codes(np.array([10, 4, 0, 7]), 5).tolist() == [True, False, False, True]
    assert allowed_codes(np.array([5, 1]), 5).tolist() == [True, False]  # exactly k rows suffice


def test_a_sub_column_without_any_code_held_by_k_rows_keeps_only_its_most_frequent() -> None:
    assert allowed_codes(np.array([1, 3, 0, 2]), 5).tolist() == [False, True, False, False]
    assert allowed_codes(np.array([0, 2, 2]), 7).tolist() == [False, True, False]  # lowest on a tie
    assert allowed_codes(np.array([]), 5).tolist() == []


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



def test_pooled_counts_publish_no_count_below_k_and_keep_the_mass():
    counts = [0.0, 40.0, 30.0, 2.0, 1.0, 0.0, 3.0, 1.0, 0.0, 0.0, 2.0, 9.0]
    pooled = pooled_counts(counts, k=5)
    assert sum(pooled) == pytest.approx(sum(counts))
    assert pooled[11] == 9.0 and pooled[1] == 40.0  # frequent bins stay
    # the tail below the top is pooled: 2 + 0 + 0 + 1 + 3 = 6 rows over lengths 6..10
    assert pooled[6:11] == pytest.approx([6 / 5] * 5)
    # the short run below it (0 + 1 + 2 = 3 rows) joins the frequent bin under it
    assert pooled[2] == 33.0 and pooled[3:6] == [0.0, 0.0, 0.0]
    # a short run at the bottom (length 0, no rows) changes nothing; a run with rows joins the nearest pool above
    assert pooled_counts([1.0, 2.0, 10.0], k=5) == [0.0, 0.0, 13.0]


def test_pooled_counts_of_fewer_than_k_rows_publish_nothing():
    assert pooled_counts([1.0, 2.0, 1.0], k=5) == [0.0, 0.0, 0.0]
