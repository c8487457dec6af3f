"""Config loading: YAML plus flags, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_synth.config import EvaluateConfig, GenerateConfig, TrainConfig, load_config
from spark_synth.errors import SynthError
from spark_synth.face.workflow import load_workflow


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


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].joinpath("conf").glob("*.yaml")))
def test_every_example_config_is_valid(path: Path) -> None:
    if path.stem.endswith("generate"):
        load_config(GenerateConfig, str(path))
        return
    workflow = load_workflow(str(path))  # the training settings and any pipeline sections
    config = workflow.train
    if path.stem == "census":
        assert workflow.evaluate.min_accuracy == 0.9 and workflow.generate.rows == 1_000_000
        assert workflow.evaluate.training == config.data and workflow.generate.model == config.model_dir
    if path.stem == "census-distributed":
        assert (config.backend, config.num_processes) == ("torch-distributor", 2)


def test_values_come_from_the_environment(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: ${DATA_ROOT}/census.parquet\nmodel_dir: m\nmax_minutes: ${MINUTES:-4}\n"
                    "spark_conf: {spark.executor.memory: 8g, spark.sql.adaptive.enabled: true}\n")
    monkeypatch.setenv("DATA_ROOT", "s3a://bucket/data")
    config = load_config(TrainConfig, str(path))
    assert config.data == "s3a://bucket/data/census.parquet" and config.max_minutes == 4
    assert config.spark_conf == {"spark.executor.memory": "8g", "spark.sql.adaptive.enabled": "true"}
    monkeypatch.delenv("DATA_ROOT")
    with pytest.raises(SynthError, match=r"\$\{DATA_ROOT\}, which is not set") as error:
        load_config(TrainConfig, str(path))
    assert "DATA_ROOT" in error.value.fix


def test_pipeline_sections_are_checked_before_any_work(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    base = "data: t.parquet\nmodel_dir: m\n"
    path.write_text(base + "generate:\n  rows: 10\n  output: o\n  fromat: csv\n")
    with pytest.raises(SynthError, match=r"\(generate:\).*unknown setting 'fromat'"):
        load_workflow(str(path))
    path.write_text(base + "evaluate:\n  holdout: h.parquet\n  promote: champion\n")
    with pytest.raises(SynthError, match="not registered"):
        load_workflow(str(path))
    assert load_config(TrainConfig, str(path), sections=("evaluate", "generate")).data == "t.parquet"


def test_evaluate_generates_its_synthetic_side_only_from_a_model() -> None:
    config = load_config(EvaluateConfig, None, model="models:/g@candidate", rows=100, training="t", holdout="h",
                         min_accuracy=0.9, promote="champion")
    assert not config.is_log and config.synthetic is None
    with pytest.raises(SynthError, match="give --model too"):
        load_config(EvaluateConfig, None, rows=100, training="t", holdout="h")
    with pytest.raises(SynthError, match="registered model"):
        load_config(EvaluateConfig, None, model="models_dir", rows=100, training="t", holdout="h", promote="x")
