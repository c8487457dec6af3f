"""Bad input through `spark-synth`: exit status 2, the problem and a fix on stderr, nothing written or changed.

Every case snapshots the directories involved (the test's tmp dir, the shared generator) before the
command and compares them after: the source is unchanged and no model dir, output or staging
directory is left behind.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from support.commands import assert_rejected, train_argv

from spark_synth.face import cli


@pytest.fixture
def census_file(tmp_path: Path, census_sample: pd.DataFrame) -> Path:
    path = tmp_path / "census.parquet"
    census_sample.head(500).to_parquet(path, index=False)
    return path


# ------------------------------------------------------------------------------------------------- train


def test_missing_input_file(spark, tmp_path: Path, mlflow_store, capsys, digest) -> None:
    missing, model_dir = tmp_path / "nope.parquet", tmp_path / "model"
    assert_rejected(train_argv(missing, model_dir, mlflow_store), capsys, digest, [tmp_path],
                    names=[str(missing)], fix=["path"])
    assert not missing.exists() and not model_dir.exists()


@pytest.mark.parametrize(
    ("yaml_text", "names", "fix"),
    [
        ("columns:\n  no_such_column:\n    exclude: true\n", ["no_such_column"], ["columns"]),
        ("max_minuts: 1\n", ["max_minuts", "{config}"], ["setting"]),
        ("max_minutes: [1, 2\nseed: 3\n", ["{config}", "YAML"], ["YAML"]),
    ],
    ids=["unknown-column", "unknown-setting", "bad-yaml"],
)
def test_bad_train_config(spark, tmp_path: Path, census_file: Path, mlflow_store, capsys, digest, yaml_text: str,
                          names: list[str], fix: list[str]) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml_text)
    model_dir = tmp_path / "model"
    assert_rejected(train_argv(census_file, model_dir, mlflow_store, "--config", str(config)), capsys, digest,
                    [tmp_path], names=[n.format(config=config) for n in names], fix=fix)
    assert not model_dir.exists()


def test_empty_table(spark, tmp_path: Path, census_sample: pd.DataFrame, mlflow_store, capsys, digest) -> None:
    empty = tmp_path / "empty.parquet"
    census_sample.iloc[:0].to_parquet(empty, index=False)
    assert pq.read_schema(empty).names == list(census_sample.columns)
    model_dir = tmp_path / "model"
    assert_rejected(train_argv(empty, model_dir, mlflow_store), capsys, digest, [tmp_path],
                    names=["empty"], fix=["rows"])
    assert not model_dir.exists()


@pytest.mark.parametrize("arrow_type, value", [(pa.string(), None), (pa.float64(), float("nan"))],
                         ids=["string-nulls", "double-nan"])
def test_all_null_column(spark, tmp_path: Path, census_sample: pd.DataFrame, mlflow_store, capsys, digest,
                         arrow_type, value) -> None:
    table = pa.Table.from_pandas(census_sample.head(500), preserve_index=False)
    table = table.append_column(pa.field("all_null_col", arrow_type), pa.array([value] * 500, type=arrow_type))
    data = tmp_path / "with_null_column.parquet"
    pq.write_table(table, data)
    model_dir = tmp_path / "model"
    assert_rejected(train_argv(data, model_dir, mlflow_store), capsys, digest, [tmp_path],
                    names=["all_null_col"], fix=["exclude"])
    assert not model_dir.exists()


@pytest.mark.parametrize("column, ddl, value, type_name", [
    ("props", "map<string,int>", {"a": 1}, "map"),
    ("address", "struct<city:string,zip:int>", ("Paris", 75001), "struct"),
])
def test_nested_column(spark, tmp_path: Path, mlflow_store, capsys, digest, column, ddl, value, type_name) -> None:
    data = tmp_path / f"{column}.parquet"
    rows = [(i, f"name-{i % 7}", value) for i in range(200)]
    spark.createDataFrame(rows, f"id int, name string, {column} {ddl}").coalesce(1).write.parquet(str(data))
    model_dir = tmp_path / "model"
    assert_rejected(train_argv(data, model_dir, mlflow_store), capsys, digest, [tmp_path],
                    names=[column, type_name], fix=["exclude"])
    assert not model_dir.exists()


def test_delta_format_on_non_delta_directory(spark, tmp_path: Path, census_sample: pd.DataFrame, mlflow_store,
                                             capsys, digest) -> None:
    data = tmp_path / "plain_parquet_dir"
    data.mkdir()
    census_sample.head(500).to_parquet(data / "part-0.parquet", index=False)
    model_dir = tmp_path / "model"
    assert_rejected(train_argv(data, model_dir, mlflow_store, "--format", "delta"), capsys, digest, [tmp_path],
                    names=[str(data), "Delta"], fix=["--format"])
    assert not model_dir.exists()


@pytest.mark.parametrize("command", ["train", "generate"])
def test_wrong_format_value(tmp_path: Path, capsys, command: str) -> None:
    argv = [command, "--format", "xlsx", "--model-dir" if command == "train" else "--model", str(tmp_path / "m")]
    with pytest.raises(SystemExit) as exit_info:
        cli.run(argv)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "--format" in stderr and "'xlsx'" in stderr
    assert "choose from" in stderr and "parquet" in stderr  # the valid values are the fix
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- generate


def generate_argv(model: Path | str, output: Path, *extra: str) -> list[str]:
    return ["generate", "--model", str(model), "--output", str(output), *extra]


@pytest.mark.parametrize("rows", ["0", "-5"])
def test_rows_not_positive(spark, trained_generator, tmp_path: Path, capsys, digest, rows: str) -> None:
    out = tmp_path / "out"
    assert_rejected(generate_argv(trained_generator.model_dir, out, "--rows", rows), capsys, digest,
                    [tmp_path, trained_generator.model_dir], names=["rows"], fix=["setting"])
    assert not out.exists()


def test_output_already_exists(spark, trained_generator, tmp_path: Path, capsys, digest) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("do not touch")
    assert_rejected(generate_argv(trained_generator.model_dir, out, "--rows", "100"), capsys, digest,
                    [tmp_path, trained_generator.model_dir], names=[str(out), "exists"], fix=["--mode overwrite"])


def test_append_delta_to_non_delta_output(spark, trained_generator, tmp_path: Path, capsys, digest) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pd.DataFrame({"x": [1, 2]}).to_parquet(out / "part-0.parquet", index=False)
    argv = generate_argv(trained_generator.model_dir, out, "--rows", "100", "--format", "delta", "--mode", "append")
    assert_rejected(argv, capsys, digest, [tmp_path, trained_generator.model_dir],
                    names=[str(out), "Delta"], fix=["format"])


@pytest.mark.parametrize("kind", ["not-a-generator", "missing"])
def test_model_dir_is_not_a_generator(spark, tmp_path: Path, capsys, digest, kind: str) -> None:
    model_dir = tmp_path / "model"
    if kind == "not-a-generator":
        model_dir.mkdir()
        (model_dir / "notes.txt").write_text("a directory, but no generator files")
    out = tmp_path / "out"
    assert_rejected(generate_argv(model_dir, out, "--rows", "100"), capsys, digest, [tmp_path],
                    names=[str(model_dir)], fix=["--model-dir"])
    assert not out.exists()


def test_generate_bad_yaml(spark, trained_generator, tmp_path: Path, capsys, digest) -> None:
    config = tmp_path / "generate.yaml"
    config.write_text("rows: 100\n  output: [x\n")
    out = tmp_path / "out"
    assert_rejected(["generate", "--config", str(config), "--model", str(trained_generator.model_dir),
                     "--output", str(out)], capsys, digest, [tmp_path, trained_generator.model_dir],
                    names=[str(config), "YAML"], fix=["YAML"])
    assert not out.exists()


# ------------------------------------------------------------------------------------- model dir hazards


def test_model_dir_that_is_the_input_directory(spark, tmp_path: Path, census_sample: pd.DataFrame, mlflow_store,
                                               capsys, digest) -> None:
    """Saving the generator must never replace the table it was trained on."""
    data = tmp_path / "table"
    data.mkdir()
    census_sample.head(500).to_parquet(data / "part-0.parquet", index=False)
    assert_rejected(train_argv(data, data, mlflow_store), capsys, digest, [tmp_path],
                    names=[str(data)], fix=["--model-dir"])


def test_model_dir_holding_other_files(spark, tmp_path: Path, census_file: Path, mlflow_store, capsys,
                                       digest) -> None:
    """An existing directory that is not a generator is refused, not silently deleted and replaced."""
    model_dir = tmp_path / "my-project"
    model_dir.mkdir()
    (model_dir / "notes.txt").write_text("someone's work")
    assert_rejected(train_argv(census_file, model_dir, mlflow_store), capsys, digest, [tmp_path],
                    names=[str(model_dir)], fix=["--model-dir"])


def test_unknown_target_is_refused_before_training(spark, tmp_path: Path, census_file: Path, mlflow_store, capsys,
                                                   digest) -> None:
    """A typo in --target must not cost a whole training run (the utility test runs at its end)."""
    model_dir = tmp_path / "generator"
    assert_rejected(train_argv(census_file, model_dir, mlflow_store, "--target", "incme"), capsys, digest,
                    [tmp_path], names=["incme", "income"], fix=["--target"])
    assert not model_dir.exists()


def test_train_report_path_that_is_not_html(spark, tmp_path: Path, census_file: Path, mlflow_store, capsys,
                                            digest) -> None:
    assert_rejected(train_argv(census_file, tmp_path / "generator", mlflow_store, "--report", str(tmp_path / "r.txt")),
                    capsys, digest, [tmp_path], names=["r.txt"], fix=[".html"])


# ------------------------------------------------------------------------------------------------ resources


def test_a_chunk_that_cannot_fit_in_a_task_is_refused(spark, trained_generator, tmp_path: Path, capsys,
                                                       digest) -> None:
    out = tmp_path / "out"
    argv = generate_argv(trained_generator.model_dir, out, "--rows", "1000", "--chunk-size", "1000000",
                         "--max-task-memory-mb", "64")
    assert_rejected(argv, capsys, digest, [tmp_path, trained_generator.model_dir],
                    names=["1,000,000 rows", "64 MiB"], fix=["--chunk-size", "--max-task-memory-mb"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal of a GPU task where no GPU is")
def test_gpu_generation_where_no_gpu_is_refused_by_its_task(spark, trained_generator, tmp_path: Path, capsys,
                                                            digest) -> None:
    """The refusal comes from inside a Spark task (executors are where the GPUs would be), and still reads as one."""
    argv = generate_argv(trained_generator.model_dir, tmp_path / "out", "--rows", "1000", "--device", "cuda")
    assert_rejected(argv, capsys, digest, [tmp_path, trained_generator.model_dir], names=["cuda"],
                    fix=["spark.task.resource.gpu.amount", "CPU"])


def test_a_task_memory_limit_must_be_positive(spark, trained_generator, tmp_path: Path, capsys, digest) -> None:
    argv = generate_argv(trained_generator.model_dir, tmp_path / "out", "--rows", "10", "--max-task-memory-mb", "0")
    assert_rejected(argv, capsys, digest, [tmp_path, trained_generator.model_dir], names=["max_task_memory_mb"],
                    fix=["setting"])


def test_a_serving_request_too_large_is_refused(trained_generator, monkeypatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    from spark_synth.generators.mlflow_model import MAX_ROWS_ENV

    trained_generator.store.activate()
    model = mlflow.pyfunc.load_model(f"models:/{trained_generator.registered_name}/1")
    monkeypatch.setenv(MAX_ROWS_ENV, "500")
    with pytest.raises(MlflowException, match="asks for 600 rows") as refused:
        model.predict(pd.DataFrame({"rows": [300, 300]}))
    assert refused.value.get_http_status_code() == 400 and "split it" in str(refused.value)
    assert len(model.predict(pd.DataFrame({"rows": [250, 250]}))) == 500


# -------------------------------------------------------------------------------------------------- secrets


def test_a_password_in_a_path_never_reaches_the_error(spark, tmp_path: Path, capsys, digest) -> None:
    model = "https://alice:hunter2@models.example.com/generator"
    argv = generate_argv(model, tmp_path / "out", "--rows", "10")
    assert_rejected(argv, capsys, digest, [tmp_path], names=["alice:***@models.example.com"], fix=["--model-dir"])
    cli.run(argv)
    assert "hunter2" not in capsys.readouterr().err
