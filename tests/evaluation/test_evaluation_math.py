"""The evaluation's math without Spark: AUC and its interval, distances, encodings, the expected accuracy,
Cramér's V, the membership attack, TSTR and the report's escaping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from spark_synth.evaluation.accuracy import cramers_v, expected_accuracy
from spark_synth.evaluation.distances import RecordEncoder, dcr_share, distance_summary, nndr
from spark_synth.evaluation.membership import auc_with_interval, membership_audit
from spark_synth.evaluation.utility import tstr


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    members, non_members = rng.integers(0, 5, 300).astype(float), rng.integers(0, 4, 200).astype(float)
    labels = np.r_[np.ones(300), np.zeros(200)]
    got = auc_with_interval(members, non_members)
    assert got["auc"] == pytest.approx(roc_auc_score(labels, np.r_[members, non_members]))
    assert got["low"] < got["auc"] < got["high"]


def test_auc_interval_matches_bootstrap_spread() -> None:
    rng = np.random.default_rng(1)
    members, non_members = rng.normal(0.3, 1, 400), rng.normal(0, 1, 500)
    got = auc_with_interval(members, non_members)
    boot = [auc_with_interval(rng.choice(members, 400), rng.choice(non_members, 500))["auc"] for _ in range(300)]
    assert got["std"] == pytest.approx(np.std(boot), rel=0.2)


def test_auc_extremes() -> None:
    assert auc_with_interval(np.array([2.0, 3.0]), np.array([0.0, 1.0]))["auc"] == 1.0
    assert auc_with_interval(np.ones(10), np.ones(10))["auc"] == 0.5
    with pytest.raises(ValueError):
        auc_with_interval(np.ones(1), np.ones(5))


def test_dcr_share_counts_ties_half_and_nndr() -> None:
    assert dcr_share(np.array([0.1, 0.5, 0.3]), np.array([0.2, 0.4, 0.3])) == pytest.approx((1 + 0 + 0.5) / 3)
    assert nndr(np.array([[0.0, 2.0], [1.0, 1.0]])) == pytest.approx([0.0, 1.0], abs=1e-6)


def test_encoder_one_hot_quantiles_nulls_and_unit_rows() -> None:
    real = pd.DataFrame({"c": ["a", "a", "b", "c"], "x": [1.0, 2.0, 3.0, np.nan]})
    encoder = RecordEncoder.fit(real, {"c": "categorical", "x": "numeric"}, may_be_null={"x"})
    assert encoder.width == (3 + 1) + 2  # three categories + other, value + null flag
    points = encoder.transform(pd.DataFrame({"c": ["a", "zzz"], "x": [2.0, np.nan]}))
    assert np.allclose(np.linalg.norm(points, axis=1), 1.0)
    assert points[1, 3] > 0 and points[1, :3].sum() == 0  # an unseen category lands in "other"
    raw = RecordEncoder.fit(real, {"x": "numeric"}, set()).transform(pd.DataFrame({"x": [1.0, 3.0, 2.0]}))
    assert raw[:, 0] == pytest.approx([-1.0, 1.0, 0.0])  # quantile-scaled to [-0.5, 0.5], then unit length


def test_distance_summary_flags_copies_and_not_fresh_samples() -> None:
    rng = np.random.default_rng(2)

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "c": rng.choice(list("abcd"), n)})

    training, holdout, fresh = frame(500), frame(500), frame(500)
    kinds = {"x": "numeric", "y": "numeric", "c": "categorical"}
    honest = distance_summary(fresh, training, holdout, kinds)
    assert 0.4 < honest["dcr_share"] < 0.6 and honest["identical_training"] == 0
    copied = distance_summary(training.sample(frac=1, random_state=0), training, holdout, kinds)
    assert copied["dcr_share"] == 1.0 and copied["identical_training"] == 1.0 and copied["identical_holdout"] == 0


def test_expected_accuracy_matches_simulation() -> None:
    rng = np.random.default_rng(3)
    p = np.array([0.5, 0.3, 0.15, 0.05])
    real = rng.multinomial(5_000, p)
    counts = dict(enumerate(real))
    simulated = [1 - 0.5 * np.abs(real / real.sum() - rng.multinomial(2_000, real / real.sum()) / 2_000).sum()
                 for _ in range(400)]
    # the formula treats the real counts as a sample too, so it sits a little below the pure-resampling mean
    assert expected_accuracy(counts, 2_000) == pytest.approx(np.mean(simulated), abs=0.01)
    assert expected_accuracy(counts, 2_000) < expected_accuracy(counts, 200_000) < 1


def test_cramers_v() -> None:
    assert cramers_v({(0, 0): 50, (1, 1): 50}) == pytest.approx(1.0)
    assert cramers_v({(0, 0): 25, (0, 1): 25, (1, 0): 25, (1, 1): 25}) == pytest.approx(0.0)
    assert cramers_v({(0, 0): 10}) == 0.0


def test_membership_audit_separates_copies_from_fresh_rows() -> None:
    rng = np.random.default_rng(4)
    members, non_members, reference = (rng.normal(size=(300, 5)) for _ in range(3))
    leaky = np.vstack([members + rng.normal(scale=0.01, size=members.shape), rng.normal(size=(300, 5))])
    assert membership_audit(leaky, members, non_members, reference)["auc_low"] > 0.8
    honest = membership_audit(rng.normal(size=(600, 5)), members, non_members, reference)
    assert honest["auc_low"] < 0.5 < honest["auc_high"] + 0.05 and 0.4 < honest["auc"] < 0.6


def test_tstr_equals_trtr_on_the_training_rows_and_ranks_the_signal_first() -> None:
    rng = np.random.default_rng(5)

    def frame(n: int) -> pd.DataFrame:
        signal, noise = rng.normal(size=n), rng.normal(size=n)
        return pd.DataFrame({"signal": signal, "noise": noise, "colour": rng.choice(["red", "blue"], n),
                             "label": np.where(signal + 0.3 * rng.normal(size=n) > 0, "yes", "no")})

    training, holdout = frame(1_500), frame(800)
    result = tstr(training, training, holdout, "label")
    assert result["task"] == "classification" and result["tstr"] == pytest.approx(result["trtr"])
    assert result["trtr"] > 0.9
    assert next(iter(result["importances"])) == "signal"
    regression = tstr(training.assign(label=training["signal"] * 2), training.assign(label=training["signal"] * 2),
                      holdout.assign(label=holdout["signal"] * 2), "label")
    assert regression["metric"] == "r2" and regression["trtr"] > 0.9
    with pytest.raises(ValueError, match="not in the data"):
        tstr(training, training, holdout, "nope")


def test_report_escapes_names_from_the_data() -> None:
    from spark_synth.evaluation.report import _table

    html = _table(["column", "accuracy"], [["<script>alert(1)</script>", 0.5]])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_planted_leak_changes_about_the_asked_share_of_values() -> None:
    from spark_synth.evaluation.membership import planted_leak

    frame = pd.DataFrame({"x": np.arange(5_000), "y": np.arange(5_000) * 2})
    leaky = planted_leak(frame, 0.1, seed=0)
    changed = (leaky != frame).to_numpy().mean()
    assert 0.08 < changed < 0.12 and list(leaky.columns) == ["x", "y"] and frame["x"].is_monotonic_increasing
