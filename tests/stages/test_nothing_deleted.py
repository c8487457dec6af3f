"""No command deletes what it does not own (issue 21): every path that once removed a user's files is refused
before any work, with everything planted in the directories involved still there byte for byte; a previous
generator is replaced only by a generator that was tracked, and kept when tracking fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from support.commands import assert_rejected, log_argv, train_argv, write_log

from spark_synth import ownership, tracking
from spark_synth.face import cli

NO_QUALITY = "quality_rows: 0\n"


def no_quality(directory: Path) -> Path:
    config = directory / "no-quality.yaml"
    config.write_text(NO_QUALITY)
    return config


def run_id(model_dir: Path) -> str:
    return json.loads((model_dir / "meta.json").read_text())["mlflow_run_id"]


def siblings(path: Path) -> list[str]:
    """What sits beside ``path``: no staging or previous-generator directory may be left there."""
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture(scope="module")
def small_census(tmp_path_factory: pytest.TempPathFactory, census_sample: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("own-census") / "census.parquet"
    census_sample.head(400).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def previous(spark, tmp_path_factory: pytest.TempPathFactory, small_census: Path, mlflow_store) -> Path:
    """A tiny flat generator, trained once: the user's previous generator that tests copy into place."""
    root = tmp_path_factory.mktemp("own-previous")
    model_dir = root / "generator"
    assert cli.run(train_argv(small_census, model_dir, mlflow_store, "--config", str(no_quality(root)))) == 0
    return model_dir


def copy_generator(previous: Path, target: Path) -> Path:
    shutil.copytree(previous, target)
    return target


# ------------------------------------------------------------------------------------------ model dir


@pytest.mark.parametrize("planted", ["generator-plus-file", "stats-json-and-data", "log-json-and-folder"])
def test_a_model_dir_holding_more_than_a_generator_is_refused(spark, tmp_path: Path, small_census: Path, previous,
                                                              mlflow_store, capsys, digest, planted: str) -> None:
    """The old rule took any dir with a stats.json or log.json for a generator and replaced it whole."""
    model_dir = tmp_path / "model"
    if planted == "generator-plus-file":
        copy_generator(previous, model_dir)
        (model_dir / "notes.txt").write_text("mine")
        named = "notes.txt"
    elif planted == "stats-json-and-data":
        model_dir.mkdir()
        (model_dir / "stats.json").write_text('{"mine": 1}')
        (model_dir / "results.csv").write_text("a,b\n1,2\n")
        named = "results.csv"
    else:
        model_dir.mkdir()
        (model_dir / "log.json").write_text("{}")
        (model_dir / "runs").mkdir()
        (model_dir / "runs" / "r1.txt").write_text("mine")
        named = "runs"
    assert_rejected(train_argv(small_census, model_dir, mlflow_store), capsys, digest, [tmp_path, small_census],
                    names=[str(model_dir), named], fix=["--model-dir"])


@pytest.mark.parametrize("where", ["model-dir", "above-model-dir", "inside-model-dir", "above-data"])
def test_a_checkpoint_dir_overlapping_the_model_dir_or_data_is_refused(spark, tmp_path: Path, census_sample, previous,
                                                                      mlflow_store, capsys, digest, where) -> None:
    """The checkpoint dir is removed after success: at or above the model dir it took the saved generator."""
    work = tmp_path / "work"
    model_dir = copy_generator(previous, work / "model")
    data = work / "data" / "census.parquet"
    data.parent.mkdir()
    census_sample.head(400).to_parquet(data, index=False)
    (work / "notes.txt").write_text("mine")
    checkpoints = {"model-dir": model_dir, "above-model-dir": work, "inside-model-dir": model_dir / "ckpt",
                   "above-data": data.parent}[where]
    assert_rejected(train_argv(data, model_dir, mlflow_store, "--checkpoint-dir", str(checkpoints)), capsys,
                    digest, [tmp_path], names=["--checkpoint-dir", str(checkpoints)], fix=["--checkpoint-dir"])


def test_a_failure_to_track_keeps_the_previous_generator_and_a_tracked_one_replaces_it(
        spark, tmp_path: Path, small_census: Path, previous, mlflow_store, monkeypatch, digest) -> None:
    model_dir = copy_generator(previous, tmp_path / "model")
    before = digest(model_dir)
    checkpoints = tmp_path / "checkpoints"
    argv = train_argv(small_census, model_dir, mlflow_store, "--config", str(no_quality(tmp_path)),
                      "--checkpoint-dir", str(checkpoints))

    def unreachable(*args, **kwargs):
        raise ConnectionError("tracking server unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(tracking, "log_generator", unreachable)
        with pytest.raises(ConnectionError):
            cli.run(argv)
    assert digest(model_dir) == before  # the previous generator, byte for byte
    assert siblings(model_dir) == ["checkpoints", "model", "no-quality.yaml"]  # the checkpoint kept to resume

    assert cli.run(argv) == 0  # resumed: a tracked generator replaces the previous one
    assert run_id(model_dir) != run_id(previous)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(ownership.FLAT_FILES)
    assert siblings(model_dir) == ["model", "no-quality.yaml"]  # the checkpoint dir removed after success


def test_a_log_training_that_fails_to_track_keeps_the_previous_generator(
        spark, tmp_path: Path, baseball_sample, previous, mlflow_store, monkeypatch, digest) -> None:
    players, batting = baseball_sample
    players = players.head(100)
    data = write_log(tmp_path / "log", players, batting[batting.players_id.isin(players.id)])
    model_dir = copy_generator(previous, tmp_path / "model")
    before = digest(model_dir)

    def unreachable(*args, **kwargs):
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(tracking, "log_generator", unreachable)
    with pytest.raises(ConnectionError):
        cli.run(log_argv(data, model_dir, mlflow_store, "--max-minutes", "0.1", "--config",
                         str(no_quality(tmp_path))))
    assert digest(model_dir) == before
    assert siblings(model_dir) == ["log", "model", "no-quality.yaml"]


# ------------------------------------------------------------------------------------------ generate, impute


@pytest.fixture
def generate_setup(tmp_path: Path, census_sample: pd.DataFrame, previous: Path) -> dict[str, Path]:
    """A generator and seed tables under one folder, each with a file of the user's beside it."""
    work = tmp_path / "work"
    model_dir = copy_generator(previous, work / "models" / "generator")
    seeds = work / "seeds"
    seeds.mkdir()
    census_sample.head(20).to_parquet(seeds / "seed.parquet", index=False)
    census_sample.head(20).to_parquet(seeds / "events.parquet", index=False)
    for folder in (work, work / "models", seeds):
        (folder / "notes.txt").write_text("mine")
    return {"model": model_dir, "models": model_dir.parent, "seed": seeds / "seed.parquet", "seeds": seeds,
            "events": seeds / "events.parquet", "inside-model": model_dir / "out", "work": work}


@pytest.mark.parametrize(("output", "mode"), [
    ("model", "overwrite"), ("model", "append"), ("model", "error"), ("models", "overwrite"),
    ("inside-model", "overwrite"), ("seed", "overwrite"), ("seeds", "overwrite"), ("seeds", "append"),
    ("events", "overwrite"), ("work", "overwrite"),
])
def test_generate_refuses_an_output_overlapping_the_model_or_seeds(spark, tmp_path: Path, generate_setup, capsys,
                                                                   digest, output: str, mode: str) -> None:
    places = generate_setup
    target = places[output]
    argv = ["generate", "--model", str(places["model"]), "--seed-data", str(places["seed"]), "--seed-events",
            str(places["events"]), "--output", str(target), "--mode", mode]
    assert_rejected(argv, capsys, digest, [tmp_path], names=["--output", str(target)], fix=["--output"])


@pytest.mark.parametrize("output", ["data", "data-folder", "model"])
def test_impute_refuses_an_output_overlapping_its_input_or_model(spark, tmp_path: Path, census_sample, previous,
                                                                 capsys, digest, output: str) -> None:
    model_dir = copy_generator(previous, tmp_path / "generator")
    data = tmp_path / "tables" / "incomplete.parquet"
    data.parent.mkdir()
    census_sample.head(20).to_parquet(data, index=False)
    target = {"data": data, "data-folder": data.parent, "model": model_dir}[output]
    argv = ["impute", "--model", str(model_dir), "--data", str(data), "--columns", "age", "--output", str(target),
            "--mode", "overwrite"]
    assert_rejected(argv, capsys, digest, [tmp_path], names=["--output", str(target)], fix=["--output"])
