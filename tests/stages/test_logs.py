"""Event logs end to end on real data: a baseball sample (players -> batting seasons, ordered by year).

One generator is trained through the CLI and shared; the tests check the linked tables it writes,
determinism across partition counts, the protected sequence length, per-subject rare values, and
the bad-input cases of the event-log interface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.commands import LogData, assert_rejected, log_argv, write_log
from support.data import BASEBALL, N_PLAYERS

from spark_synth.errors import SynthError
from spark_synth.face import cli
from spark_synth.generators.event_log import LogGenerator


@dataclass(frozen=True)
class TrainedLog:
    data: LogData
    model_dir: Path
    real_events: pd.DataFrame


@pytest.fixture(scope="session")
def trained_log(spark, tmp_path_factory, baseball_sample, mlflow_store) -> TrainedLog:
    players, batting = baseball_sample
    data = write_log(tmp_path_factory.mktemp("baseball"), players, batting)
    model_dir = tmp_path_factory.mktemp("trained-log") / "generator"
    # bounded by epochs, not minutes: the same generator (and figures) however loaded the machine is
    assert cli.run(log_argv(data, model_dir, mlflow_store, "--max-epochs", "6", "--max-minutes", "10")) == 0
    return TrainedLog(data, model_dir, batting)


@pytest.fixture(scope="session")
def generated(trained_log, tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    output = tmp_path_factory.mktemp("generated") / "log"
    rc = cli.run(["generate", "--model", str(trained_log.model_dir), "--subjects", "2500", "--output", str(output),
                  "--chunk-size", "1000"])
    assert rc == 0
    return pd.read_parquet(output / "subjects"), pd.read_parquet(output / "events")


def test_generated_tables_are_linked_and_ordered(generated, trained_log) -> None:
    subjects, events = generated
    real = trained_log.real_events
    assert len(subjects) == 2500 and subjects.id.is_unique
    assert list(events.columns) == list(real.columns)
    assert events.players_id.isin(subjects.id).all()  # every event references a generated subject
    assert (events.groupby("players_id").year.diff().dropna() >= 0).all()  # never goes back in time
    # a short training run: the mean length is learned only roughly (the toy unit test checks it closely)
    assert 0.3 * len(real) / N_PLAYERS < len(events) / len(subjects) < 3 * len(real) / N_PLAYERS
    assert set(events.team.dropna()) <= set(real.team) | {"_RARE_"}


def test_iso_date_strings_are_modelled_as_dates_and_written_back_as_text(generated, trained_log) -> None:
    subjects, _ = generated
    stats = json.loads((trained_log.model_dir / "subjects" / "stats.json").read_text())
    birth = next(c for c in stats["columns"] if c["name"] == "birthDate")
    assert birth["encoding"] == "datetime" and birth["text_format"] == "date" and birth["spark_type"] == "string"
    dates = subjects.birthDate.dropna()
    assert dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all() and dates.nunique() > 500
    assert pd.to_datetime(dates).dt.year.between(1800, 2010).all()


def test_sequence_lengths_stay_within_the_protected_maximum(generated, trained_log) -> None:
    _, events = generated
    sequence = json.loads((trained_log.model_dir / "log.json").read_text())
    real_lengths = trained_log.real_events.groupby("players_id").size()
    assert sequence["max_length"] < real_lengths.max() or (real_lengths == real_lengths.max()).sum() >= 5
    assert events.groupby("players_id").size().max() <= sequence["max_length"]


def test_generation_is_independent_of_partitions_and_matches_local_sampling(spark, trained_log) -> None:
    from spark_synth.spark.sample_job import generate_tables

    generator = LogGenerator.load(str(trained_log.model_dir))
    frames = []
    for partitions in (1, 3):
        subjects, events = generate_tables(spark, generator, 700, seed=5, chunk_size=250, partitions=partitions).values()
        frames.append((subjects.toPandas(), events.toPandas()))
    local = generator.sample(700, seed=5, chunk_size=250)
    for (s1, e1), (s2, e2) in ((frames[0], frames[1]), (frames[0], local)):
        pd.testing.assert_frame_equal(s1, s2)
        pd.testing.assert_frame_equal(e1.reset_index(drop=True), e2.reset_index(drop=True))
    prefix_subjects, prefix_events = generator.sample(300, seed=5, chunk_size=250)
    pd.testing.assert_frame_equal(prefix_subjects, local[0].head(300))
    assert prefix_events.players_id.isin(prefix_subjects.id).all()


def test_one_subjects_long_sequence_and_rare_team_do_not_come_out(spark, tmp_path, baseball_sample, mlflow_store) -> None:
    players, batting = baseball_sample
    players, batting = players.head(400), batting[batting.players_id.isin(players.head(400).id)]
    planted_id = players.id.iloc[0]
    planted = pd.DataFrame({"players_id": planted_id, "year": np.arange(1800, 1800 + 120), "team": "ZZ9",
                            "league": "NL"}).reindex(columns=batting.columns)
    planted = planted.fillna({c: 1 for c in batting.columns if c not in ("players_id", "team", "league")})
    data = write_log(tmp_path / "planted", players, pd.concat([batting[batting.players_id != planted_id], planted]))
    model_dir = tmp_path / "model"
    assert cli.run(log_argv(data, model_dir, mlflow_store, "--max-minutes", "0.1", "--config",
                            str(_no_quality(tmp_path)))) == 0
    sequence = json.loads((model_dir / "log.json").read_text())
    assert sequence["max_length"] < 40  # the 120-event subject does not set the maximum length
    stored = (model_dir / "events" / "stats.json").read_text()
    assert "ZZ9" not in stored  # 120 events, one subject: rare
    subjects, events = LogGenerator.load(str(model_dir)).sample(3000, seed=1)
    assert events.groupby("players_id").size().max() <= sequence["max_length"]
    assert "ZZ9" not in set(events.team.dropna()) and events.year.min() >= 1850


def _no_quality(tmp_path: Path) -> Path:
    config = tmp_path / "train.yaml"
    config.write_text("quality_rows: 0\n")
    return config


# ---------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def small_log(tmp_path, baseball_sample) -> tuple[pd.DataFrame, pd.DataFrame]:
    players, batting = baseball_sample
    players = players.head(100)
    return players, batting[batting.players_id.isin(players.id)]


def test_missing_foreign_key_column(spark, tmp_path, small_log, mlflow_store, capsys, digest) -> None:
    players, batting = small_log
    data = write_log(tmp_path / "in", players, batting.rename(columns={"players_id": "player"}))
    assert_rejected(log_argv(data, tmp_path / "model", mlflow_store), capsys, digest, [tmp_path],
                    names=["players_id", "--foreign-key"], fix=["--foreign-key"])


def test_duplicate_subject_keys(spark, tmp_path, small_log, mlflow_store, capsys, digest) -> None:
    players, batting = small_log
    data = write_log(tmp_path / "in", pd.concat([players, players.head(3)]), batting)
    assert_rejected(log_argv(data, tmp_path / "model", mlflow_store), capsys, digest, [tmp_path],
                    names=["not unique", "id", "3 duplicate"], fix=["deduplicate"])


def test_nulls_in_the_order_column(spark, tmp_path, small_log, mlflow_store, capsys, digest) -> None:
    players, batting = small_log
    batting = batting.astype({"year": "float64"})
    batting.loc[batting.index[:2], "year"] = None
    data = write_log(tmp_path / "in", players, batting)
    assert_rejected(log_argv(data, tmp_path / "model", mlflow_store), capsys, digest, [tmp_path],
                    names=["2 event(s)", "null", "year"], fix=["--order-by"])


def test_empty_events_table(spark, tmp_path, small_log, mlflow_store, capsys, digest) -> None:
    players, batting = small_log
    data = write_log(tmp_path / "in", players, batting.iloc[:0])
    assert_rejected(log_argv(data, tmp_path / "model", mlflow_store), capsys, digest, [tmp_path],
                    names=["empty", str(data.events)], fix=["--events"])


def test_flat_and_log_inputs_together(tmp_path, capsys, digest, mlflow_store) -> None:
    data = LogData(tmp_path / "p.parquet", tmp_path / "b.parquet")
    argv = [*log_argv(data, tmp_path / "model", mlflow_store), "--data", str(data.subjects)]
    assert_rejected(argv, capsys, digest, [tmp_path], names=["either --data", "not both"], fix=["setting"])


def test_generate_rows_with_a_log_generator(trained_log, tmp_path, capsys, digest) -> None:
    argv = ["generate", "--model", str(trained_log.model_dir), "--rows", "10", "--output", str(tmp_path / "out")]
    assert_rejected(argv, capsys, digest, [tmp_path, trained_log.model_dir], names=["event-log generator"],
                    fix=["--subjects"])


def test_mlflow_pyfunc_returns_events_with_their_subjects(trained_log, mlflow_store) -> None:
    import mlflow

    mlflow_store.activate()
    run_id = json.loads((trained_log.model_dir / "meta.json").read_text())["mlflow_run_id"]
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/pyfunc")
    rows = model.predict(pd.DataFrame({"rows": [40], "seed": [2]}))
    assert rows.id.nunique() == 40  # subjects without events keep one row
    assert {"country", "birthDate", "event.year", "event.team"} <= set(rows.columns)
    assert (rows.dropna(subset=["event.year"]).groupby("id")["event.year"].diff().dropna() >= 0).all()
    # a seeded request in the output's own shape: a subject's rows share its key, event.* its first events
    request = pd.DataFrame({"id": ["a", "a", "b"], "bats": ["L", "L", "R"], "event.year": [1990, 1991, None],
                            "event.team": ["BOS", "NYA", None]})
    seeded = model.predict(request, params={"seed": 3, "temperature": 0.9})
    assert seeded.id.nunique() == 2 and set(seeded.bats) == {"L", "R"} and not set(seeded.id) & {"a", "b"}
    first = seeded[seeded.bats == "L"].head(2)
    assert first["event.year"].tolist() == [1990, 1991] and first["event.team"].tolist() == ["BOS", "NYA"]


def test_training_run_holds_the_evaluation(trained_log, mlflow_store) -> None:
    run_id = json.loads((trained_log.model_dir / "meta.json").read_text())["mlflow_run_id"]
    client = mlflow_store.client()
    metrics = client.get_run(run_id).data.metrics
    for name in ("eval_accuracy_overall", "eval_subject_accuracy_overall", "eval_coherence", "eval_sequence_length",
                 "eval_dcr_share", "eval_membership_auc"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert "evaluation/report.html" in {a.path for a in client.list_artifacts(run_id, "evaluation")}


def test_evaluate_two_table_form(generated, trained_log, tmp_path, capsys) -> None:
    subjects, events = generated
    synthetic = write_log(tmp_path / "synthetic", subjects, events)
    players = pd.read_parquet(BASEBALL / "players_holdout.parquet").sample(400, random_state=0)
    batting = pd.read_parquet(BASEBALL / "batting_holdout.parquet")
    holdout = write_log(tmp_path / "holdout", players, batting[batting.players_id.isin(players.id)])
    report = tmp_path / "log-report.html"
    argv = ["evaluate", "--subject-key", "id", "--foreign-key", "players_id", "--order-by", "year",
            "--target", "bats", "--report", str(report), "--no-mlflow", "--no-progress"]
    for side, data in (("synthetic", synthetic), ("training", trained_log.data), ("holdout", holdout)):
        argv += [f"--{side}-subjects", str(data.subjects), f"--{side}-events", str(data.events)]
    assert cli.run(argv) == 0
    figures = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  "))
    assert 0.5 < float(figures["coherence"]) <= 1.0 and 0.5 < float(figures["sequence_length"]) <= 1.0
    assert 0.3 < float(figures["membership_auc"]) < 0.7 and "utility_tstr" in figures
    html = report.read_text()
    assert "Sequences" in html and html.count("data:image/png;base64,") >= 7  # both tables, lengths, privacy, utility


def test_seeded_subjects_come_out_with_their_events(trained_log, baseball_sample, mlflow_store, tmp_path) -> None:
    """One subject per seed row (its attributes kept exactly), each with generated events linked by new keys."""
    players, _ = baseball_sample
    seed = players[["bats", "throws", "country"]].head(120)
    seed.to_parquet(tmp_path / "seed.parquet", index=False)
    output = tmp_path / "out"
    assert cli.run(["generate", "--model", str(trained_log.model_dir), "--seed-data", str(tmp_path / "seed.parquet"),
                    "--output", str(output), "--tracking-uri", mlflow_store.uri, "--seed", "2"]) == 0
    subjects, events = pd.read_parquet(output / "subjects"), pd.read_parquet(output / "events")
    key = ["bats", "throws", "country"]
    pd.testing.assert_frame_equal(subjects[key].sort_values(key).reset_index(drop=True),
                                  seed.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert subjects["id"].is_unique and set(events["players_id"]) <= set(subjects["id"])
    assert len(events) > len(subjects)  # the real players average several seasons each
    in_process, in_process_events = LogGenerator.load(str(trained_log.model_dir)).sample_seeded(seed, seed=2)
    assert len(in_process) == 120 and (in_process["bats"].to_numpy() == seed["bats"].to_numpy()).all()
    assert set(in_process_events["players_id"]) <= set(in_process["id"])


SEED_EVENT_COLUMNS = ["players_id", "year", "team", "G"]


def _seed_with_first_events(baseball_sample, n: int = 90) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed players (one in three without events) told apart by their attributes, with their first two
    seasons (some columns only, shuffled: the order column puts them back in order)."""
    players, batting = baseball_sample
    identity = ["birthDate", "weight", "height", "bats"]
    players = players.dropna(subset=identity).drop_duplicates(identity, keep=False)
    seed = players[["id", *identity]].head(n).reset_index(drop=True)
    with_events = seed.id.iloc[: 2 * n // 3]
    first = batting[batting.players_id.isin(with_events)].sort_values(["players_id", "year"]).groupby("players_id")
    events = first.head(2)[SEED_EVENT_COLUMNS].sample(frac=1, random_state=0).reset_index(drop=True)
    return seed, events


def _check_first_events(seed: pd.DataFrame, seed_events: pd.DataFrame, subjects: pd.DataFrame,
                        events: pd.DataFrame) -> None:
    identity = ["birthDate", "weight", "height", "bats"]
    generated_key = subjects.set_index(identity)["id"]
    assert len(subjects) == len(seed) and generated_key.index.is_unique and not set(subjects.id) & set(seed.id)
    for old_key, attributes in seed.set_index("id")[identity].iterrows():
        own = events[events.players_id == generated_key.loc[tuple(attributes)]].reset_index(drop=True)
        given = seed_events[seed_events.players_id == old_key].sort_values("year").reset_index(drop=True)
        head = own.head(len(given))
        assert len(own) >= len(given)
        assert head[["year", "team", "G"]].astype(str).equals(given[["year", "team", "G"]].astype(str))
        assert (own.year.diff().dropna() >= 0).all()  # the continuation goes on from the last given season


def test_seeded_first_events_are_kept_and_continued(trained_log, baseball_sample, mlflow_store, tmp_path) -> None:
    """Seed subjects with their first seasons: each generated subject begins with exactly its given events
    (through Spark's two jobs and in process), then goes on with generated ones."""
    seed, seed_events = _seed_with_first_events(baseball_sample)
    seed.to_parquet(tmp_path / "seed.parquet", index=False)
    seed_events.to_parquet(tmp_path / "seed-events.parquet", index=False)
    output = tmp_path / "out"
    assert cli.run(["generate", "--model", str(trained_log.model_dir), "--seed-data", str(tmp_path / "seed.parquet"),
                    "--seed-events", str(tmp_path / "seed-events.parquet"), "--output", str(output),
                    "--tracking-uri", mlflow_store.uri, "--seed", "2"]) == 0
    subjects, events = pd.read_parquet(output / "subjects"), pd.read_parquet(output / "events")
    _check_first_events(seed, seed_events, subjects, events)
    assert len(events) > len(seed_events) + len(seed)  # continued beyond the given seasons
    in_process = LogGenerator.load(str(trained_log.model_dir)).sample_seeded(seed, seed=2, seed_events=seed_events)
    _check_first_events(seed, seed_events, *in_process)


def test_bad_seed_events_are_refused(trained_log, baseball_sample, mlflow_store, tmp_path, capsys, digest) -> None:
    seed, seed_events = _seed_with_first_events(baseball_sample, n=12)
    seed.to_parquet(tmp_path / "seed.parquet", index=False)
    seed.drop(columns="id").to_parquet(tmp_path / "keyless.parquet", index=False)

    def argv(seed_path: Path, events_path: Path) -> list[str]:
        return ["generate", "--model", str(trained_log.model_dir), "--seed-data", str(seed_path), "--seed-events",
                str(events_path), "--output", str(tmp_path / "out"), "--tracking-uri", mlflow_store.uri]

    cases = {
        "unknown": (seed_events.assign(stadium="x"), ["'stadium'"], ["Rename or drop"]),
        "orphan": (pd.concat([seed_events, seed_events.head(1).assign(players_id="nobody")]),
                   ["reference no seed subject"], ["key of a seed subject"]),
        "no-link": (seed_events.drop(columns="players_id"), ["no foreign key column 'players_id'"], ["Add 'players_id'"]),
        "empty": (seed_events.head(0), ["no rows"], ["leave out --seed-events"]),
    }
    for name, (events, problem, fix) in cases.items():
        path = tmp_path / f"{name}.parquet"
        events.to_parquet(path, index=False)
        assert_rejected(argv(tmp_path / "seed.parquet", path), capsys, digest, [tmp_path / "seed.parquet", path],
                        problem, fix)
        assert not (tmp_path / "out").exists()
    seed_events.to_parquet(tmp_path / "events.parquet", index=False)
    assert_rejected(argv(tmp_path / "keyless.parquet", tmp_path / "events.parquet"), capsys, digest,
                    [tmp_path / "keyless.parquet"], ["need the subject key 'id'"], ["Add 'id'"])
    generator = LogGenerator.load(str(trained_log.model_dir))
    too_long = pd.DataFrame({"players_id": seed.id.iloc[0], "year": range(2000, 2001 + generator.sequence.max_length)})
    with pytest.raises(SynthError, match="at most"):
        generator.sample_seeded(seed, seed_events=too_long)


def test_a_seed_with_the_subject_key_is_refused(trained_log, baseball_sample, mlflow_store, tmp_path, capsys,
                                                digest) -> None:
    players, _ = baseball_sample
    players[["id", "bats"]].head(5).to_parquet(tmp_path / "seed.parquet", index=False)
    assert_rejected(["generate", "--model", str(trained_log.model_dir), "--seed-data", str(tmp_path / "seed.parquet"),
                     "--output", str(tmp_path / "out"), "--tracking-uri", mlflow_store.uri], capsys, digest,
                    [tmp_path / "seed.parquet"], ["subject key 'id'"], ["Drop the key column"])
    assert not (tmp_path / "out").exists()


def test_temperature_and_top_p_reach_the_event_sampler(trained_log) -> None:
    """A low temperature with a tight nucleus concentrates the events on fewer distinct values."""
    from spark_synth.generators.controls import Controls

    generator = LogGenerator.load(str(trained_log.model_dir))
    _, plain = generator.sample(300, seed=4)
    _, sharp = generator.sample(300, seed=4, controls=Controls(temperature=0.5, top_p=0.5))
    assert sharp["team"].nunique() < plain["team"].nunique()
    with pytest.raises(SynthError, match="flat-table generators"):
        generator.sample(10, controls=Controls(fairness_target="bats", fairness_sensitive="throws"))


def test_an_event_log_is_replaced_whole_or_not_at_all(trained_log, tmp_path, digest) -> None:
    """Overwriting an event log whose events job keeps failing (after its subjects job succeeded) leaves the old
    subjects and events as they were: the pair is staged together and renamed in at once."""
    from support.commands import submit_generate

    output = tmp_path / "log"  # the log to replace, written in this session (only the failing job needs its own JVM)
    assert cli.run(["generate", "--model", str(trained_log.model_dir), "--subjects", "1000", "--chunk-size", "500",
                    "--output", str(output)]) == 0
    before = digest(tmp_path)
    failed = submit_generate(trained_log.model_dir, output, "events:1:always", "--mode", "overwrite", "--seed", "8",
                             size=("--subjects", 1000), chunk=500)
    said = failed.stdout + failed.stderr
    assert failed.returncode == 1 and "error: generation failed" in said, said[-3000:]
    assert digest(tmp_path) == before
