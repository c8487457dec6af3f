"""The most common shape of a behavioral log: events with a subject id and no subject attributes.

Two inputs: the events given alone (their subjects are the distinct foreign keys), and a subject table
that holds only its key. Both train through the CLI on real baseball seasons and generate linked,
ordered tables whose subject table is keys only; the evaluation takes the events alone too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support.commands import assert_rejected

from spark_synth.face import cli

SHAPES = ("events-alone", "key-only-subjects")


def _train_argv(shape: str, directory: Path, players: pd.DataFrame, batting: pd.DataFrame, store) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    events = directory / "batting.parquet"
    batting.to_parquet(events, index=False)
    argv = ["train", "--events", str(events), "--foreign-key", "players_id", "--order-by", "year",
            "--model-dir", str(directory / "generator"), "--tracking-uri", store.uri, "--no-progress",
            "--max-minutes", "0.15", "--config", str(_no_quality(directory))]
    if shape == "key-only-subjects":
        subjects = directory / "players.parquet"
        players[["id"]].to_parquet(subjects, index=False)
        argv += ["--subjects", str(subjects), "--subject-key", "id"]
    return argv


def _no_quality(directory: Path) -> Path:
    config = directory / "train.yaml"
    config.write_text("quality_rows: 0\n")
    return config


def _generate(shape: str, tmp_path_factory, baseball_sample, store) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    players, batting = baseball_sample
    players = players.head(600)
    batting = batting[batting.players_id.isin(players.id)]
    directory = tmp_path_factory.mktemp(shape)
    assert cli.run(_train_argv(shape, directory, players, batting, store)) == 0
    output = directory / "synthetic"
    assert cli.run(["generate", "--model", str(directory / "generator"), "--subjects", "800", "--output",
                    str(output)]) == 0
    return shape, pd.read_parquet(output / "subjects"), pd.read_parquet(output / "events")


@pytest.fixture(scope="module")
def events_alone(tmp_path_factory, baseball_sample, mlflow_store) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    return _generate("events-alone", tmp_path_factory, baseball_sample, mlflow_store)


@pytest.fixture(scope="module", params=SHAPES)
def generated(request, tmp_path_factory, baseball_sample, mlflow_store, events_alone):
    if request.param == "events-alone":
        return events_alone
    return _generate(request.param, tmp_path_factory, baseball_sample, mlflow_store)


def test_the_subject_table_is_keys_only_and_every_event_is_linked_and_ordered(generated, baseball_sample) -> None:
    shape, subjects, events = generated
    key = "players_id" if shape == "events-alone" else "id"
    assert list(subjects.columns) == [key] and len(subjects) == 800 and subjects[key].is_unique
    assert list(events.columns) == list(baseball_sample[1].columns)
    assert events.players_id.isin(subjects[key]).all()  # no orphans
    assert (events.groupby("players_id").year.diff().dropna() >= 0).all()  # in order
    assert 1 < len(events) / len(subjects) < 20  # seasons per player: the real mean is about 6


def test_the_evaluation_takes_the_events_alone(events_alone, baseball_sample, tmp_path, capsys) -> None:
    _, _, events = events_alone
    players, batting = baseball_sample
    sides = {"synthetic": events, "training": batting[batting.players_id.isin(players.id[:600])],
             "holdout": batting[batting.players_id.isin(players.id[600:900])]}
    argv = ["evaluate", "--foreign-key", "players_id", "--order-by", "year", "--no-mlflow", "--no-progress"]
    for side, frame in sides.items():
        frame.to_parquet(tmp_path / f"{side}.parquet", index=False)
        argv += [f"--{side}-events", str(tmp_path / f"{side}.parquet")]
    capsys.readouterr()
    assert cli.run(argv) == 0
    figures = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  "))
    assert 0.5 < float(figures["sequence_length"]) <= 1.0 and 0.5 < float(figures["coherence"]) <= 1.0


def test_a_subject_key_without_events_settings_is_refused(tmp_path, capsys, digest, mlflow_store) -> None:
    argv = ["train", "--events", str(tmp_path / "e.parquet"), "--model-dir", str(tmp_path / "m"),
            "--tracking-uri", mlflow_store.uri]
    assert_rejected(argv, capsys, digest, [tmp_path], names=["--foreign-key"], fix=["setting"])


def test_events_alone_without_the_foreign_key_column_are_refused(baseball_sample, tmp_path, capsys, digest) -> None:
    _, batting = baseball_sample
    argv = ["evaluate", "--foreign-key", "player", "--no-mlflow", "--no-progress"]
    for side in ("synthetic", "training", "holdout"):
        batting.head(200).to_parquet(tmp_path / f"{side}.parquet", index=False)
        argv += [f"--{side}-events", str(tmp_path / f"{side}.parquet")]
    assert_rejected(argv, capsys, digest, [tmp_path], names=["training events", "'player'"], fix=["key column"])
