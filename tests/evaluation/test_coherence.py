"""Coherence summary of event logs: exact figures on hand-sized logs, sanity on perturbed copies and on
the baseball split (players -> batting seasons)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from support.data import BASEBALL

from spark_synth.evaluation.coherence import coherence_summary, format_coherence

FIGURES = ("coherence", "consecutive_pairs", "distinct_per_subject", "subjects_per_category")


def _logs(seed: int = 0, n_subjects: int = 80) -> pd.DataFrame:
    """Subjects with 1..9 events: a trending number, a Markov-chain category, a date, some nulls."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        level = rng.normal(50, 15)
        state = rng.choice(["a", "b", "c"])
        for t in range(int(rng.integers(1, 10))):
            level += rng.normal(3, 1)
            if rng.random() < 0.2:
                state = {"a": "b", "b": "c", "c": "a"}[state]
            value = None if rng.random() < 0.05 else float(level)
            rows.append((f"s{s:03d}", t, value, state, dt.date(2020, 1, 1) + dt.timedelta(days=30 * t + s)))
    return pd.DataFrame(rows, columns=["sid", "t", "level", "state", "day"])


@pytest.fixture(scope="module")
def logs(spark):
    return spark.createDataFrame(_logs())


COLUMNS = ["t", "level", "state", "day"]


def test_identical_data_scores_one(logs):
    summary = coherence_summary(logs, logs, "sid", COLUMNS, order_by="t")
    for figure in (*FIGURES, "sequence_length", "sequence_length_nonempty"):
        assert summary[figure] == pytest.approx(1.0), figure
    assert set(summary["per_column"]) == set(COLUMNS)
    assert summary["length_real"] == summary["length_synthetic"]
    assert summary["length_real"]["subjects"] == 80
    text = format_coherence(summary)
    assert text.startswith("coherence 1.0000")
    assert "length real" in text and "length synthetic" in text


def test_independent_draws_only_move_the_pairs(logs):
    # each side draws its own consecutive pair, as mostlyai-qa does: identical data no longer scores exactly 1
    summary = coherence_summary(logs, logs, "sid", COLUMNS, order_by="t", independent_draws=True)
    assert summary["consecutive_pairs"] < 1.0
    assert summary["distinct_per_subject"] == pytest.approx(1.0)
    assert summary["subjects_per_category"] == pytest.approx(1.0)
    assert summary["sequence_length"] == pytest.approx(1.0)


def test_shuffled_order_lowers_consecutive_pairs(spark, logs):
    pdf = _logs()
    rng = np.random.default_rng(1)
    pdf["t"] = pdf.groupby("sid")["t"].transform(lambda t: rng.permutation(t.to_numpy()))
    shuffled = spark.createDataFrame(pdf)
    # order by "t" (now scrambled) but leave "t" itself out: only the order of the rest changes
    columns = ["level", "state", "day"]
    summary = coherence_summary(logs, shuffled, "sid", columns, order_by="t")
    assert summary["consecutive_pairs"] < 0.8
    # the same events per subject: the per-subject figures and the lengths cannot tell
    assert summary["distinct_per_subject"] == pytest.approx(1.0)
    assert summary["subjects_per_category"] == pytest.approx(1.0)
    assert summary["sequence_length"] == pytest.approx(1.0)
    assert summary["coherence"] < 1.0


def test_length_one_sequences_score_low(spark, logs):
    first_only = spark.createDataFrame(_logs().query("t == 0"))
    summary = coherence_summary(logs, first_only, "sid", COLUMNS, order_by="t")
    assert summary["sequence_length"] < 0.3
    assert summary["length_synthetic"]["max"] == 1
    assert summary["length_synthetic"]["mean"] == 1.0
    assert summary["length_real"]["max"] > 1
    assert summary["distinct_per_subject"] < 0.5
    assert summary["coherence"] < 0.8


def test_hand_computed_figures(spark):
    # real: 5 subjects [a, a] and 5 subjects [a, b]; synthetic: 10 subjects [a, b]
    real = spark.createDataFrame(
        [(f"r{i}", t, "a" if i < 5 or t == 0 else "b") for i in range(10) for t in (0, 1)],
        "sid string, t int, c string",
    )
    syn = spark.createDataFrame(
        [(f"s{i}", t, "ab"[t]) for i in range(10) for t in (0, 1)], "sid string, t int, c string"
    )
    summary = coherence_summary(real, syn, "sid", ["c"], order_by="t")
    # pairs (a, a) 1/2, (a, b) 1/2 vs (a, b) 1 -> TVD 1/2
    assert summary["consecutive_pairs"] == pytest.approx(0.5)
    # distinct per subject 1: 1/2, 2: 1/2 vs 2: 1 -> TVD 1/2
    assert summary["distinct_per_subject"] == pytest.approx(0.5)
    # subjects per category a 10, b 5 (2/3, 1/3) vs a 10, b 10 (1/2, 1/2) -> TVD 1/6
    assert summary["subjects_per_category"] == pytest.approx(5 / 6)
    assert summary["coherence"] == pytest.approx((0.5 + 0.5 + 5 / 6) / 3)
    assert summary["sequence_length"] == pytest.approx(1.0)


def test_subject_keys_count_empty_subjects(spark):
    events = spark.createDataFrame(
        [(f"k{i}", t, float(t)) for i in range(20) for t in range(1 + i % 3)], "sid string, t int, x double"
    )
    real_keys = spark.createDataFrame([(f"k{i}",) for i in range(40)], "id string")  # 20 without events
    syn_keys = spark.createDataFrame([(f"k{i}",) for i in range(20)], "id string")  # none without events
    summary = coherence_summary(
        events,
        events,
        "sid",
        ["x"],
        order_by="t",
        real_subject_keys=real_keys,
        synthetic_subject_keys=syn_keys,
    )
    assert summary["length_real"]["empty_subjects"] == 20
    assert summary["length_real"]["subjects"] == 40
    assert summary["length_synthetic"]["empty_subjects"] == 0
    assert summary["sequence_length"] == pytest.approx(0.5)  # half the real mass sits at length 0
    assert summary["sequence_length_nonempty"] == pytest.approx(1.0)
    assert summary["coherence"] == pytest.approx(1.0)
    # orphan synthetic events: keys missing from the synthetic subject table
    fewer = spark.createDataFrame([(f"k{i}",) for i in range(10)], "id string")
    summary = coherence_summary(events, events, "sid", ["x"], "t", real_keys, fewer)
    assert summary["orphan_events"] == sum(1 + i % 3 for i in range(10, 20))


def test_compact_bin_codes_equal_the_plain_ones(spark):
    from spark_synth.evaluation.accuracy import fit_bins
    from spark_synth.evaluation.bins import bin_code
    from spark_synth.spark.schema import quoted

    rng = np.random.default_rng(3)
    n = 600
    pdf = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "ties": rng.choice([0, 0, 0, 1, 2, 5, 7], size=n).astype(float),
            "cat": rng.choice([f"c{i}" for i in range(40)] + ["", None], size=n),
            "flag": rng.random(n) < 0.3,
            "day": [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, size=n)],
        }
    )
    pdf.loc[::13, "num"] = np.nan
    df = spark.createDataFrame(pdf)
    specs = fit_bins(df, list(pdf.columns), 30, 30)
    codes = df.select(
        *[bin_code(quoted(s.name), s).alias(f"e{i}") for i, s in enumerate(specs)],
        *[bin_code(quoted(s.name), s, compact=True).alias(f"c{i}") for i, s in enumerate(specs)],
    ).toPandas()
    for i, spec in enumerate(specs):
        assert (codes[f"e{i}"] == codes[f"c{i}"]).all(), spec.name


def test_bad_arguments(logs, spark):
    with pytest.raises(ValueError, match="missing"):
        coherence_summary(logs, logs, "sid", ["nope"])
    with pytest.raises(ValueError, match="foreign key"):
        coherence_summary(logs, logs, "sid", ["sid", "t"])
    with pytest.raises(ValueError, match="both sides"):
        coherence_summary(logs, logs, "sid", ["t"], real_subject_keys=logs.select("sid"))
    with pytest.raises(ValueError, match="no events"):
        coherence_summary(logs, logs.where("false"), "sid", ["t"])


BASEBALL_COLUMNS = ["year", "team", "G", "AB", "HR", "SO"]


@pytest.fixture(scope="module")
def baseball(spark):
    """600 players of each split with their seasons (a few columns), and the players' keys."""
    out = {}
    for split in ("train", "holdout"):
        players = pd.read_parquet(BASEBALL / f"players_{split}.parquet", columns=["id"]).sample(
            600, random_state=0
        )
        batting = pd.read_parquet(
            BASEBALL / f"batting_{split}.parquet", columns=["players_id", *BASEBALL_COLUMNS]
        )
        batting = batting[batting["players_id"].isin(players["id"])]
        out[split] = (batting, spark.createDataFrame(batting), spark.createDataFrame(players))
    return out


def test_baseball_holdout_scores_high_and_dealt_events_lower(spark, baseball):
    (_, trn, trn_keys), (hol_pdf, hol, hol_keys) = baseball["train"], baseball["holdout"]
    summary = coherence_summary(trn, hol, "players_id", BASEBALL_COLUMNS, "year", trn_keys, hol_keys)
    # one consecutive pair per player: with 600 players the pair figure carries sampling noise (~0.84)
    assert summary["coherence"] > 0.88
    assert summary["consecutive_pairs"] > 0.78
    assert summary["distinct_per_subject"] > 0.92
    assert summary["subjects_per_category"] > 0.93
    assert summary["sequence_length"] > 0.9
    assert 3 < summary["length_real"]["mean"] < 8
    assert summary["length_real"]["subjects"] == summary["length_synthetic"]["subjects"] == 600

    # the same seasons dealt to random players (lengths kept): careers no longer hang together
    dealt = hol_pdf.assign(players_id=np.random.default_rng(0).permutation(hol_pdf["players_id"].to_numpy()))
    dealt = coherence_summary(
        trn, spark.createDataFrame(dealt), "players_id", BASEBALL_COLUMNS, "year", trn_keys, hol_keys
    )
    assert dealt["coherence"] < summary["coherence"] - 0.08
    assert dealt["consecutive_pairs"] < summary["consecutive_pairs"] - 0.15
    assert dealt["sequence_length"] == pytest.approx(summary["sequence_length"])
