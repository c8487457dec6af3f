"""Differential privacy end to end on Spark: noisy statistics, rare values, accounting in MLflow, bad budgets."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from opacus.accountants import RDPAccountant
from support.commands import assert_rejected, log_argv, write_log

from spark_synth.face import cli
from spark_synth.privacy.budget import Budget
from spark_synth.privacy.plan import plan_statistics
from spark_synth.spark.private_analyze import noisy_counts, private_statistics, released_partitions
from spark_synth.spark.schema import ColumnPlan

COLOR = ColumnPlan("color", "string", "categorical", "auto")
AMOUNT = ColumnPlan("amount", "double", "numeric", "auto")


def test_noisy_counts_differ_from_exact_ones_by_noise_of_the_stated_scale(spark) -> None:
    rows = [(f"c{i}",) for i in range(400) for _ in range(20 + i % 7)]
    df = spark.createDataFrame(rows, "color string")
    counts = noisy_counts(df, [COLOR], noise_std=10.0).toPandas()
    residual = counts["noisy"] - counts["count"]
    assert len(counts) == 400
    assert abs(residual.mean()) < 1.5  # 3 standard errors of the mean of 400 N(0, 10) draws
    assert 8.5 < residual.std() < 11.5
    assert (counts["count"] == counts.groupby("s")["count"].transform("first")).all()


def test_partitions_on_spark_are_the_numpy_bin_codes(spark) -> None:
    """Every released partition is computed on Spark: its log-bin codes must be the numpy twin's, for numbers
    (zero, negatives, tiny and huge magnitudes) and dates (days from the DP origin), and exact values
    keep their text or number, whatever the column is called."""
    from spark_synth.privacy import histograms as H

    numbers = [0.0, -0.0, 1.0, -3.5, 1e-300, 2.5e-9, 7.0, 123456.789, -1e300, 2.0**40, None]
    dates = [dt.date(2000, 1, 1), dt.date(1969, 12, 31), dt.date(2024, 2, 29), None, dt.date(1, 1, 1),
             dt.date(9999, 12, 31), dt.date(2000, 1, 2), dt.date(1999, 12, 31), dt.date(2000, 1, 1),
             dt.date(1970, 1, 1), dt.date(2031, 7, 4)]
    texts = ["a'b", "back\\slash", None, "x", "y", "z", "ünï", "1", "2", "3", "4"]
    plans = [ColumnPlan("it's `n`.x", "double", "numeric", "auto"), ColumnPlan("d", "date", "datetime", "auto"),
             ColumnPlan("t", "string", "categorical", "auto")]
    df = spark.createDataFrame(list(zip(numbers, dates, texts, strict=True)), "`it's ``n``.x` double, d date, t string")
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # the DP analysis reads a date at the session's midnight
    try:
        counts = noisy_counts(df, plans, noise_std=0.0).toPandas()
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    binned = counts[counts.f == H.BINNED]

    def codes_of(i: int) -> set[float]:
        return set(binned[(binned.i == i) & ~binned["isnull"]]["d"])

    given = np.array([v for v in numbers if v is not None])
    assert codes_of(0) == {float(c) for c in H.bin_code(given)}
    days = np.array([(d - dt.date(1970, 1, 1)).days - H.DATE_ORIGIN_DAYS for d in dates if d is not None], dtype=float)
    assert codes_of(1) == {float(c) for c in H.bin_code(days)}
    exact = counts[(counts.f == H.EXACT) & ~counts["isnull"]]
    assert set(exact[exact.i == 2]["s"]) == {t for t in texts if t is not None}
    assert set(exact[exact.i == 0]["d"]) == set(given)
    assert counts.groupby("i")["isnull"].sum().to_dict() == {0: 1, 1: 1, 2: 1}  # each column's null counted once


def test_a_category_held_by_one_row_is_not_released(spark) -> None:
    rows = [("common",)] * 3000 + [("usual",)] * 2000 + [("only-me",)]
    df = spark.createDataFrame(rows, "color string")
    release = plan_statistics(Budget(1.0, 1e-6), [[COLOR]])
    for _ in range(5):
        stats = private_statistics(df, [COLOR], release.noise_std, release.threshold, noisy_rows=5001)
        assert stats.columns[0].values == ("common", "usual")


def test_a_subjects_category_is_dropped_however_many_events_hold_it(spark) -> None:
    """User-level sensitivity: 500 events of one subject count once, so its category stays hidden."""
    events = [(s, "A" if s % 2 else "B", float(s % 50)) for s in range(3000)]
    events += [(7, "ZZ9", 1e9)] * 500
    df = spark.createDataFrame(events, "subject int, color string, amount double")
    release = plan_statistics(Budget(4.0, 1e-6), [[COLOR, AMOUNT]])
    assert 20 < release.threshold < 500  # counted per event, the planted category (500 events) would pass it
    for _ in range(5):
        released = released_partitions(df, [COLOR, AMOUNT], release.noise_std, release.threshold, unit="subject")
        assert set(released[0]["exact"]) == {"A", "B"}
        assert max(released[1]["exact"]) < 1e9 and all(abs(c) < 10_100 for c in released[1]["bins"])  # below 2^12.5
        stats = private_statistics(df, [COLOR, AMOUNT], release.noise_std, release.threshold, None, unit="subject")
        assert "ZZ9" not in json.dumps(stats.to_json()) and stats.columns[1].encoding == "categorical"
        assert max(stats.columns[1].values) < 1e9


def test_bounds_of_a_continuous_column_come_from_released_bins(spark) -> None:
    values = np.random.default_rng(0).lognormal(10, 1, 20_000)
    df = spark.createDataFrame(pd.DataFrame({"amount": values}))
    release = plan_statistics(Budget(2.0, 1e-6), [[AMOUNT]])
    entry = private_statistics(df, [AMOUNT], release.noise_std, release.threshold, 20_000).to_json()["columns"][0]
    assert entry["encoding"] == "binned" and entry["edges"] == sorted(entry["edges"])
    assert values.min() <= entry["min"] < np.quantile(values, 0.03)  # never the true extreme ...
    assert np.quantile(values, 0.97) < entry["max"] <= values.max()  # ... but covering the bulk
    assert len(entry["edges"]) > 30


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def private_run(spark, tmp_path_factory, census_parquet, mlflow_store):
    model_dir = tmp_path_factory.mktemp("private") / "generator"
    config = tmp_path_factory.mktemp("private-config") / "train.yaml"
    config.write_text("quality_rows: 0\nmax_epsilon: 4\ndelta: 1.0e-5\n")
    rc = cli.run(["train", "--data", str(census_parquet), "--model-dir", str(model_dir), "--max-minutes", "0.15",
                  "--config", str(config), "--tracking-uri", mlflow_store.uri, "--no-progress"])
    assert rc == 0
    return model_dir, json.loads((model_dir / "meta.json").read_text())


def test_private_training_reports_epsilon_within_budget_everywhere(private_run, mlflow_store, census_sample) -> None:
    model_dir, meta = private_run
    privacy = meta["privacy"]
    assert 0 < privacy["epsilon"] <= 4.0 and privacy["delta"] == 1e-5
    assert privacy["training_epsilon"] < privacy["epsilon"]
    run = mlflow_store.client().get_run(meta["mlflow_run_id"])
    assert run.data.metrics["epsilon"] == pytest.approx(privacy["epsilon"])
    stats = json.loads((model_dir / "stats.json").read_text())
    assert stats["private"] and abs(stats["n_rows"] - len(census_sample)) < 200  # a noisy count, not the exact one
    assert "train_rows" not in run.data.params and "best_val_loss" not in run.data.metrics


def test_training_epsilon_recomputed_with_opacus_from_the_logged_run(private_run, mlflow_store) -> None:
    _, meta = private_run
    metrics = mlflow_store.client().get_run(meta["mlflow_run_id"]).data.metrics
    accountant = RDPAccountant()
    accountant.history = [(metrics["dp_noise_multiplier"], metrics["dp_sample_rate"], int(metrics["dp_steps"]))]
    recomputed = accountant.get_epsilon(meta["privacy"]["rdp_delta"])
    assert recomputed == pytest.approx(meta["privacy"]["training_epsilon"], rel=1e-6)
    assert recomputed == pytest.approx(metrics["training_epsilon"], rel=1e-6)


def test_private_generator_samples_rows_of_the_training_schema(private_run, census_sample) -> None:
    from spark_synth.generators.flat import FlatGenerator

    rows = FlatGenerator.load(str(private_run[0])).sample(500, seed=3)
    assert list(rows.columns) == list(census_sample.columns) and len(rows) == 500
    assert set(rows["sex"].dropna()) <= set(census_sample["sex"])


@pytest.mark.parametrize("flags, names, fix", [
    (["--max-epsilon", "0"], ["max_epsilon", "positive"], ["setting"]),
    (["--max-epsilon", "2", "--delta", "1.5"], ["delta", "between 0 and 1"], ["setting"]),
    (["--max-epsilon", "2", "--delta", "0.001"], ["delta", "1 / number of rows"], ["--delta below"]),
    (["--delta", "1e-6"], ["max_epsilon"], ["setting"]),
])
def test_invalid_budgets_fail_before_any_work(flags, names, fix, tmp_path, census_parquet, mlflow_store, capsys,
                                              digest) -> None:
    model_dir = tmp_path / "model"
    argv = ["train", "--data", str(census_parquet), "--model-dir", str(model_dir), "--tracking-uri", mlflow_store.uri,
            "--no-progress", *flags]
    assert_rejected(argv, capsys, digest, [tmp_path, census_parquet], names, fix)


def test_event_log_with_user_level_dp_runs_end_to_end(spark, tmp_path, mlflow_store) -> None:
    from support.data import BASEBALL

    players = pd.read_parquet(BASEBALL / "players_train.parquet").sample(3000, random_state=5)
    batting = pd.read_parquet(BASEBALL / "batting_train.parquet")
    batting = batting[batting.players_id.isin(players.id)]
    planted = pd.DataFrame({"players_id": players.id.iloc[0], "year": np.arange(1900, 1960), "team": "ZZ9",
                            "league": "NL"}).reindex(columns=batting.columns)
    planted = planted.fillna({c: 1 for c in batting.columns if c not in ("players_id", "team", "league")})
    data = write_log(tmp_path / "log", players, pd.concat([batting, planted]))
    model_dir = tmp_path / "model"
    config = tmp_path / "train.yaml"
    config.write_text("quality_rows: 0\n")
    assert cli.run(log_argv(data, model_dir, mlflow_store, "--max-minutes", "0.3", "--max-epsilon", "4",
                            "--config", str(config))) == 0
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["privacy"]["epsilon"] <= 4.0 and len(meta["privacy"]["dp_sgd"]) == 2
    stored = "".join(p.read_text() for p in model_dir.rglob("*.json"))
    assert "ZZ9" not in stored and "orphan_events" not in meta
    assert json.loads((model_dir / "log.json").read_text())["max_length"] < 60

    from spark_synth.generators.event_log import LogGenerator

    subjects, events = LogGenerator.load(str(model_dir)).sample(200, seed=1)
    assert len(subjects) == 200 and events.players_id.isin(subjects.id).all()
    assert "ZZ9" not in set(events.team.dropna())



def test_text_dates_are_decided_on_noisy_margins_and_a_few_dates_stay_text(spark, monkeypatch) -> None:
    from spark_synth.privacy.plan import text_date_noise_std
    from spark_synth.spark import normalize
    from spark_synth.spark.normalize import private_text_date_formats
    from spark_synth.spark.schema import plan_columns

    monkeypatch.setattr(normalize.secrets, "randbits", lambda bits: 11)  # one fixed draw of the product's noise

    rows = [("1934-02-05" if i % 50 else "unknown", f"name{i % 40}", None if i % 3 else "2001-01-01 10:00:00",
             "1999-12-31" if i < 3 else None, i // 4) for i in range(40_000)]
    df = spark.createDataFrame(rows, "born string, name string, seen string, few string, subject int")
    plans = plan_columns(df.schema, {})
    noise = text_date_noise_std(4)
    assert private_text_date_formats(df, plans, noise) == {"born": "date", "seen": "timestamp"}
    # per subject (4 rows each, one vote each: 10,000 votes, 800 of them with a non-date): the same decisions
    assert private_text_date_formats(df, plans, noise, unit="subject") == {"born": "date", "seen": "timestamp"}
