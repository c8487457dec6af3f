"""Config loading: YAML plus flags, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_synth.config import GenerateConfig, TrainConfig, load_config
from spark_synth.errors import SynthError


def test_flags_override_the_file(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: a.parquet\nmodel-dir: m\nmax_minutes: 3\ncolumns:\n  id: {exclude: true}\n")
    config = load_config(TrainConfig, str(path), max_minutes=7.5, seed=None)
    assert config.data == "a.parquet" and config.model_dir == "m" and config.max_minutes == 7.5
    assert config.columns["id"].exclude


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data: a\nmodel_dir: m\nmax_minuts: 3\n", "unknown setting 'max_minuts'"),
        ("data: a\n", "missing setting 'model_dir'"),
        ("data: a\nmodel_dir: m\ncolumns:\n  x: {encoding: fancy}\n", "columns.x.encoding"),
        ("data: a\nmodel_dir: m\nmax_minutes: -1\n", "max_minutes"),
        ("- just\n- a list\n", "mapping"),
        ("data: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text: str, needle: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(SynthError) as error:
        load_config(TrainConfig, str(path))
    assert needle in str(error.value)
    assert error.value.fix


def test_rows_must_be_positive() -> None:
    with pytest.raises(SynthError, match="rows"):
        load_config(GenerateConfig, None, model="m", rows=0, output="o")


def test_missing_config_file() -> None:
    with pytest.raises(SynthError, match="does not exist"):
        load_config(GenerateConfig, "/nonexistent/config.yaml")


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[2].joinpath("conf").glob("*.yaml")))
def test_every_example_config_is_valid(path: Path) -> None:
    cls = GenerateConfig if path.stem.endswith("generate") else TrainConfig
    config = load_config(cls, str(path))
    if path.stem == "census-distributed":
        assert (config.backend, config.num_processes) == ("torch-distributor", 2)
