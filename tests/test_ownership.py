"""What a command may replace or remove, without Spark: place overlaps, a generator's file set, the staged
replace of a model dir, and a checkpoint dir's own entries."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from support.tiny_generators import tiny_generator, tiny_log_generator

from spark_synth import ownership
from spark_synth.config import TrainConfig
from spark_synth.errors import SynthError
from spark_synth.generators.event_log import FILES as LOG_FILES
from spark_synth.generators.event_log import LogGenerator
from spark_synth.generators.flat import FILES, FlatGenerator
from spark_synth.spark.workspace import STATS_FILE, Workspace, _check_checkpoint_dir


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


def plant(directory: Path, files: dict[str, str]) -> dict[str, str]:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return snapshot(directory)


# ------------------------------------------------------------------------------------------ locations


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("/data/x", "/data/x", True),
    ("/data/x", "/data/x/", True),
    ("/data/x", "/data/x/y", True),
    ("/data/x/y", "/data", True),
    ("/data/x", "/data/xy", False),
    ("/data/a", "/data/b", False),
    ("/data/x/../y", "/data/y/z", True),
    ("file:///data/x", "/data/x/part-0.parquet", True),
    ("file:/data/x", "/data/x", True),
    ("s3://bucket/a", "s3a://bucket/a/b", True),
    ("s3://bucket/a", "s3://bucket/ab", False),
    ("s3://bucket/a", "s3://other/a", False),
    ("dbfs:/tmp/x", "dbfs:/tmp/x/", True),
    ("dbfs:/tmp/x", "/tmp/x", False),
    ("models:/census/1", "/tmp/out", False),
])
def test_overlap(a: str, b: str, expected: bool) -> None:
    assert ownership.overlap(a, b) is expected
    assert ownership.overlap(b, a) is expected


def test_overlap_sees_through_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert ownership.overlap(tmp_path / "link" / "out", tmp_path / "real")


def test_check_apart_names_both_places_and_skips_what_is_not_a_place() -> None:
    with pytest.raises(SynthError) as refused:
        ownership.check_apart([("--model-dir", "/w/m"), ("--checkpoint-dir", None)],
                              [("--data", object()), ("--events", "/w")], "Choose apart.")
    assert "--model-dir /w/m" in refused.value.problem and "--events /w" in refused.value.problem
    ownership.check_apart([("--output", "/w/out")], [("--data", "/w/in"), ("--subjects", "/w/in/s")], "fix")
    ownership.check_apart([], [("--subjects", "/w/in"), ("--events", "/w/in")], "fix")  # inputs may overlap


def test_check_not_within_allows_places_below() -> None:
    ownership.check_not_within("work_dir", "/tmp", [("--model-dir", "/tmp/model")], "fix")
    with pytest.raises(SynthError, match="work_dir /tmp/model/w"):
        ownership.check_not_within("work_dir", "/tmp/model/w", [("--model-dir", "/tmp/model")], "fix")


def test_a_name_that_may_be_a_table_is_not_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ownership.maybe_table_name("main.default.census")
    (tmp_path / "census").mkdir()
    assert not ownership.maybe_table_name("census") and not ownership.maybe_table_name("x/y")


# ------------------------------------------------------------------------------------------ generators


def test_the_file_sets_are_what_save_writes(tmp_path: Path) -> None:
    assert set(tiny_generator().to_payload()) == set(FILES) == set(ownership.FLAT_FILES)
    assert set(tiny_log_generator().to_payload()) == set(LOG_FILES) == set(ownership.LOG_FILES)
    tiny_generator().save(str(tmp_path / "flat"))
    tiny_log_generator().save(str(tmp_path / "log"))
    assert ownership.foreign_entries(str(tmp_path / "flat")) == []
    assert ownership.foreign_entries(str(tmp_path / "log")) == []


@pytest.mark.parametrize(("files", "named"), [
    ({"notes.txt": "x"}, "notes.txt"),
    ({"stats.json": "{}"}, "no meta.json"),  # the old rule took any stats.json for a generator
    ({"log.json": "{}", "data/part-0.parquet": "x"}, "data"),
    ({n: "x" for n in FILES} | {"notes.txt": "mine"}, "notes.txt"),
    ({n: "x" for n in FILES} | {"sub/a.txt": "mine"}, "sub"),
    ({n: "x" for n in LOG_FILES} | {"events/extra.csv": "mine"}, "events/extra.csv"),
    ({n: "x" for n in FILES} | {n: "x" for n in LOG_FILES}, "weights.safetensors"),  # two generators
])
def test_anything_but_one_generator_is_refused_and_kept(tmp_path: Path, files: dict[str, str], named: str) -> None:
    model_dir = tmp_path / "model"
    before = plant(model_dir, files)
    with pytest.raises(SynthError) as refused:
        tiny_generator().save(str(model_dir))
    assert named in refused.value.problem and str(model_dir) in refused.value.problem
    assert "--model-dir" not in refused.value.problem  # the API names the directory, not a flag
    with pytest.raises(SynthError):
        ownership.check_replaceable(str(model_dir))
    assert snapshot(model_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging left


def test_a_file_or_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(SynthError, match="is a file"):
        ownership.check_replaceable(str(tmp_path / "file"))
    with pytest.raises(SynthError, match="symbolic link"):
        ownership.check_replaceable(str(tmp_path / "link"))


@pytest.mark.parametrize("first", ["flat", "log", "empty"])
def test_a_generator_replaces_a_previous_one(tmp_path: Path, first: str) -> None:
    model_dir = tmp_path / "model"
    if first == "empty":
        model_dir.mkdir()
    else:
        (tiny_generator(seed=1) if first == "flat" else tiny_log_generator()).save(str(model_dir))
    new = tiny_generator(seed=2)
    new.save(str(model_dir))
    assert FlatGenerator.load(str(model_dir)).to_payload() == new.to_payload()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    log = tiny_log_generator()
    log.save(str(model_dir))
    assert LogGenerator.load(str(model_dir)).to_payload() == log.to_payload()


def test_a_failed_swap_leaves_the_previous_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = tmp_path / "model"
    tiny_generator(seed=1).save(str(model_dir))
    before = snapshot(model_dir)
    real = os.replace

    def failing(src, dst):
        if ".staged-" in str(src):
            raise OSError("disk gone")
        return real(src, dst)

    monkeypatch.setattr(ownership.os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"):
        tiny_generator(seed=2).save(str(model_dir))
    assert snapshot(model_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_staged_then_discarded_leaves_the_model_dir(tmp_path: Path) -> None:
    """The training flow: save to a staging sibling, then swap in (tracked) or discard (not tracked)."""
    model_dir = tmp_path / "model"
    tiny_generator(seed=1).save(str(model_dir))
    before = snapshot(model_dir)
    staged = ownership.staging_for(str(model_dir))
    assert os.path.basename(staged) == "model"  # logged to MLflow under the model dir's own name
    tiny_generator(seed=2).save(staged)
    assert snapshot(model_dir) == before  # untouched until swapped in
    ownership.discard(staged)
    assert snapshot(model_dir) == before and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    staged = ownership.staging_for(str(model_dir))
    tiny_generator(seed=2).save(staged)
    ownership.replace_dir(staged, str(model_dir))
    ownership.discard(staged)
    assert FlatGenerator.load(str(model_dir)).to_payload() == tiny_generator(seed=2).to_payload()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_model_dir_that_gained_user_files_is_not_swapped(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    staged = ownership.staging_for(str(model_dir))
    tiny_generator().save(staged)
    before = plant(model_dir, {"notes.txt": "written during training"})
    with pytest.raises(SynthError, match="notes.txt"):
        ownership.replace_dir(staged, str(model_dir))
    assert snapshot(model_dir) == before
    ownership.discard(staged)


# ------------------------------------------------------------------------------------------ checkpoint dir


def train_config(tmp_path: Path, **settings) -> TrainConfig:
    return TrainConfig(data=str(tmp_path / "data.parquet"), model_dir=str(tmp_path / "model"), **settings)


def test_a_checkpoint_dir_with_user_files_is_refused(tmp_path: Path) -> None:
    checkpoints = tmp_path / "ckpt"
    before = plant(checkpoints, {STATS_FILE: "{}", "notes.txt": "mine"})
    with pytest.raises(SynthError, match="notes.txt"):
        _check_checkpoint_dir(str(checkpoints))
    assert snapshot(checkpoints) == before
    other = tmp_path / "other"
    plant(other, {"a.txt": "mine"})
    with pytest.raises(SynthError, match="not a spark-synth checkpoint"):
        _check_checkpoint_dir(str(other))


def test_closing_a_checkpoint_dir_removes_only_its_own_entries(tmp_path: Path) -> None:
    checkpoints = tmp_path / "ckpt"
    workspace = Workspace(train_config(tmp_path, checkpoint_dir=str(checkpoints)))
    workspace.save_stats({"n_rows": 1})
    plant(checkpoints, {"encoded/part-0.parquet": "x", "checkpoint/model.pt": "x", "ranks-0a1b2c3d/0.json": "x"})
    (checkpoints / "late.txt").write_text("put there while training")
    workspace.close(succeeded=True)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["late.txt"]
    (checkpoints / "late.txt").unlink()
    workspace = Workspace(train_config(tmp_path, checkpoint_dir=str(checkpoints)))
    workspace.close(succeeded=True)
    assert not checkpoints.exists()  # emptied: the directory goes too


def test_discard_removes_only_a_staging_holder(tmp_path: Path) -> None:
    user = plant(tmp_path / "user", {"data.csv": "a,b\n1,2\n"})
    ownership.discard(str(tmp_path / "user" / "data.csv"))  # not a path staging_for made: left alone
    assert snapshot(tmp_path / "user") == user
