"""Accuracy summary: exact figures on hand-sized data, sanity on shuffled copies and on real census data."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from support.data import CENSUS_DIR

from spark_synth.evaluation import accuracy
from spark_synth.evaluation.accuracy import accuracy_summary, format_summary

CENSUS = CENSUS_DIR


@pytest.fixture(scope="module")
def mixed(spark):
    """Every column kind the binning distinguishes, with nulls, NaN and empty strings."""
    rng = np.random.default_rng(0)
    n = 400
    pdf = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "int_low": rng.integers(0, 4, size=n),
            "cat": rng.choice(["a", "b", "c", "", None], size=n),
            "flag": rng.random(n) < 0.3,
            "day": [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, size=n)],
            "ts": pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 10**6, size=n), unit="s"),
        }
    )
    pdf.loc[::17, "num"] = np.nan
    return spark.createDataFrame(pdf)


def test_identical_data_scores_one(mixed):
    summary = accuracy_summary(mixed, mixed)
    assert summary["univariate"] == pytest.approx(1.0)
    assert summary["bivariate"] == pytest.approx(1.0)
    assert set(summary["per_column"]) == set(mixed.columns)
    assert len(summary["per_pair"]) == 15
    assert all(v == pytest.approx(1.0) for v in summary["per_pair"].values())


def test_hand_computed_tvd(spark):
    # real:  c = a x10, b x5;  x = 1 x5, 2 x5, 3 x5 (<= n_bins distinct values: one bin each)
    # synth: c = a x5, b x10;  x = 1 x10, 3 x3, null x2
    real = spark.createDataFrame([("a", 1)] * 5 + [("a", 2)] * 5 + [("b", 3)] * 5, "c string, x long")
    syn = spark.createDataFrame(
        [("a", 1)] * 5 + [("b", 1)] * 5 + [("b", 3)] * 3 + [("b", None)] * 2, "c string, x long"
    )
    summary = accuracy_summary(real, syn)
    # c: |2/3 - 1/3| + |1/3 - 2/3| = 2/3 -> TVD 1/3
    assert summary["per_column"]["c"] == pytest.approx(2 / 3)
    # x: |1/3 - 2/3| + |1/3 - 0| + |1/3 - 1/5| + |0 - 2/15| = 14/15 -> TVD 7/15
    assert summary["per_column"]["x"] == pytest.approx(8 / 15)
    # (c, x): (a,2) 1/3, (b,1) 1/3, (b,3) 2/15, (b,null) 2/15 differ -> TVD 7/15
    assert summary["per_pair"]["c|x"] == pytest.approx(8 / 15)
    assert summary["univariate"] == pytest.approx((2 / 3 + 8 / 15) / 2)
    assert summary["bivariate"] == pytest.approx(8 / 15)


def test_edges_fitted_on_real_and_out_of_range_values_clip(spark):
    # real 0..99: decile edges 9, 19, ..., 89 (mostlyai-qa's), the last bin [89, 99] holds 11 values;
    # synthetic values far above the real range all fall into that last bin.
    real = spark.range(100).selectExpr("cast(id as double) as v")
    syn = spark.range(100).selectExpr("cast(id + 1000 as double) as v")
    assert accuracy_summary(real, syn)["per_column"]["v"] == pytest.approx(0.11)


def test_unseen_and_rare_categories_pool_into_other(spark):
    # "r" occurs < 5 times in real data, so it is not kept; it shares the "other" bin with unseen "z".
    real = spark.createDataFrame([("a",)] * 10 + [("r",)] * 2, "c string")
    syn = spark.createDataFrame([("a",)] * 10 + [("z",)] * 2, "c string")
    assert accuracy_summary(real, syn)["per_column"]["c"] == pytest.approx(1.0)


def test_shuffled_columns_keep_marginals_but_break_pairs(spark):
    pdf = pd.read_parquet(CENSUS / "census_train.parquet")
    rng = np.random.default_rng(1)
    shuffled = pdf.apply(lambda col: col.to_numpy()[rng.permutation(len(col))])
    summary = accuracy_summary(spark.createDataFrame(pdf), spark.createDataFrame(shuffled))
    assert summary["univariate"] == pytest.approx(1.0)
    assert summary["bivariate"] < 0.93
    assert min(summary["per_pair"].values()) < 0.8  # e.g. relationship|sex


def test_census_holdout_scores_high(spark):
    train = spark.read.parquet(str(CENSUS / "census_train.parquet"))
    holdout = spark.read.parquet(str(CENSUS / "census_holdout.parquet"))
    summary = accuracy_summary(train, holdout)
    assert summary["univariate"] >= 0.95
    assert summary["bivariate"] >= 0.95
    text = format_summary(summary)
    assert "univariate" in text and "weakest columns" in text


def test_columns_on_one_side_only_raise(mixed):
    with pytest.raises(ValueError, match="num"):
        accuracy_summary(mixed, mixed.drop("num"))
    with pytest.raises(ValueError, match="nope"):
        accuracy_summary(mixed, mixed, columns=["cat", "nope"])


def test_column_subset_and_single_column(mixed):
    summary = accuracy_summary(mixed, mixed, columns=["cat"])
    assert summary["per_column"] == {"cat": pytest.approx(1.0)}
    assert summary["per_pair"] == {}
    assert math.isnan(summary["bivariate"])


def test_synthetic_of_another_type_is_coerced(spark):
    real = spark.createDataFrame([(float(i),) for i in range(50)], "v double")
    syn = spark.createDataFrame([(str(i),) for i in range(50)], "v string")
    assert accuracy_summary(real, syn)["univariate"] == pytest.approx(1.0)


def _mostlyai_qa_breaks(values: np.ndarray, n_bins: int) -> list[float]:
    """mostlyai-qa's published binning (bin_numeric, search_bin_boundaries), the reference our edges must equal."""
    values = np.sort(values[~np.isnan(values)])
    if len(np.unique(values)) <= n_bins:
        return [*np.unique(values).tolist(), values[-1] + 1]
    breaks: list[float] = []
    for points in range(n_bins, max(n_bins + 1, min(1000, len(values) + 1))):
        breaks = sorted(set(values[np.linspace(0, len(values) - 1, points).astype(int)].tolist()))
        if len(breaks) >= n_bins + 1:
            break
    return breaks


@pytest.mark.parametrize("exact_distinct", [accuracy.EXACT_DISTINCT, 0], ids=["value-counts", "percentile-grid"])
def test_edges_are_mostlyai_qas_from_value_counts_and_from_the_quantile_grid(spark, monkeypatch, exact_distinct):
    """Heavily tied columns (mostly zeros, as capital gains) and continuous ones get mostlyai-qa's edges, whether
    read from exact value counts (few distinct values) or from percentile_approx over the grid (many)."""
    monkeypatch.setattr(accuracy, "EXACT_DISTINCT", exact_distinct)
    rng = np.random.default_rng(5)
    n = 900
    pdf = pd.DataFrame({
        "gains": np.where(rng.random(n) < 0.9, 0.0, rng.choice(np.arange(1, 30) * 517.0, n)),
        "few": rng.choice([1.0, 2.0, 5.0], n),
        "ages": rng.integers(17, 90, n).astype(float),
        "wide": rng.normal(size=n).round(4),
    })
    specs = accuracy.fit_bins(spark.createDataFrame(pdf), list(pdf.columns), 10, 10)
    for spec in specs:
        if exact_distinct == 0 and spec.name == "few":  # the product counts such a column's values at any setting
            continue
        expected = accuracy.floor_breaks(_mostlyai_qa_breaks(pdf[spec.name].to_numpy(), 10))[1:-1]
        assert spec.edges == pytest.approx(expected), spec.name


def test_marginals_counted_on_the_driver_equal_the_spark_jobs(mixed, monkeypatch):
    """Few distinct bin tuples are counted on the driver; the figures are those of the Spark path, triples too."""
    on_driver = accuracy_summary(mixed, mixed.sample(fraction=0.5, seed=1), max_triples=20)
    monkeypatch.setattr(accuracy, "DRIVER_TUPLES", 0)
    in_spark = accuracy_summary(mixed, mixed.sample(fraction=0.5, seed=1), max_triples=20)
    assert on_driver["per_column"] == in_spark["per_column"] and on_driver["per_pair"] == in_spark["per_pair"]
    assert on_driver["trivariate"] == in_spark["trivariate"] and not math.isnan(in_spark["trivariate"])
