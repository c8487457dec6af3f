"""End to end through the CLI and the Python API: real Spark, real files, real MLflow (sqlite in tmp)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable
from pyspark.sql import functions as F

from spark_synth.config import GenerateConfig, TrainConfig
from spark_synth.face import cli
from spark_synth.generators.flat import FILES, FlatGenerator
from spark_synth.spark.sample_job import spark_schema
from spark_synth.stages.generate import generate
from spark_synth.stages.train import train

TRAINING_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]


def run_generate(model: Path | str, output: Path, *flags: str) -> int:
    return cli.run(["generate", "--model", str(model), "--output", str(output), *flags])


def sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a canonical order, so tables written by any number of tasks can be compared."""
    return df.sort_values(list(df.columns), kind="mergesort").reset_index(drop=True)


def write_yaml(path: Path, settings: dict) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


def part_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("part-"))


def run_id_of(model_dir: Path) -> str:
    return json.loads((model_dir / "meta.json").read_text())["mlflow_run_id"]


# ------------------------------------------------------------------------------------- CLI train + generate


def test_cli_train_then_generate(spark, trained_generator, tmp_path: Path, capsys) -> None:
    model_dir = trained_generator.model_dir
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(FILES)  # the generator, nothing else

    out = tmp_path / "synthetic"
    assert run_generate(model_dir, out, "--rows", "5000") == 0
    assert "wrote 5000 synthetic rows" in capsys.readouterr().out

    source = spark.read.parquet(str(trained_generator.data))
    synthetic = spark.read.parquet(str(out))
    assert synthetic.columns == TRAINING_COLUMNS
    assert synthetic.dtypes == source.dtypes  # same names, same Spark types, same order
    assert synthetic.count() == 5000

    def null_counts(df) -> dict[str, int]:
        return df.agg(*[F.count_if(F.col(c).isNull()).alias(c) for c in df.columns]).collect()[0].asDict()

    source_nulls, synthetic_nulls = null_counts(source), null_counts(synthetic)
    never_null = [c for c, n in source_nulls.items() if n == 0]
    assert never_null  # the census sample has no nulls at all
    assert {c: synthetic_nulls[c] for c in never_null} == dict.fromkeys(never_null, 0)


def test_config_file_gives_same_settings_and_flags_win(
    spark, trained_generator, mlflow_store, tmp_path: Path
) -> None:
    # The same settings the shared generator got as flags, plus a budget and a model dir that flags override.
    from_file, from_flag = tmp_path / "model-from-file", tmp_path / "model-from-flag"
    config = write_yaml(tmp_path / "train.yaml", {
        "data": str(trained_generator.data),
        "model_dir": str(from_file),
        "max_minutes": 0.5,
        "seed": 0,
        "quality-rows": 0,  # dashes are accepted like the flags' spelling
        "tracking_uri": mlflow_store.uri,
        "progress": False,
    })
    rc = cli.run(["train", "--config", str(config), "--model-dir", str(from_flag), "--max-minutes", "0.1"])
    assert rc == 0
    assert from_flag.is_dir() and not from_file.exists()

    # Same data and settings as the flag-trained generator: the same columns, planned alike. (Values held by
    # about k rows may differ: each training draws the protection's k anew, in secret.)
    def planned(stats: dict) -> list[tuple]:
        return [(c["name"], c["spark_type"], c["kind"]) for c in stats["columns"]] + [stats["n_rows"]]

    stats = json.loads((from_flag / "stats.json").read_text())
    assert planned(stats) == planned(json.loads((trained_generator.model_dir / "stats.json").read_text()))

    run = mlflow_store.client().get_run(run_id_of(from_flag))
    assert run.data.params["max_minutes"] == "0.1"  # the flag won over the file's 0.5
    assert run.data.params["quality_rows"] == "0"  # the file's value where no flag was given
    assert run.data.params["model_dir"] == str(from_flag)
    assert "eval_accuracy_univariate" not in run.data.metrics

    # generate: the file's seed and format, the flags' rows and output.
    file_out, flag_out = tmp_path / "gen-from-file", tmp_path / "gen-from-flag"
    gen_config = write_yaml(tmp_path / "generate.yaml", {
        "model": str(trained_generator.model_dir), "rows": 100, "output": str(file_out), "format": "csv", "seed": 3,
    })
    assert cli.run(["generate", "--config", str(gen_config), "--rows", "250", "--output", str(flag_out)]) == 0
    assert not file_out.exists()
    generator = FlatGenerator.load(str(trained_generator.model_dir))
    written = spark.read.schema(spark_schema(generator)).option("header", True).csv(str(flag_out)).toPandas()
    assert len(written) == 250
    pd.testing.assert_frame_equal(sorted_frame(written), sorted_frame(generator.sample(250, seed=3)))


# ------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_table_for_any_partitioning(trained_generator, tmp_path: Path) -> None:
    tables = {}
    for name, seed, partitions in (("p1", 7, 1), ("p4", 7, 4), ("other-seed", 8, 4)):
        out = tmp_path / name
        flags = ["--rows", "5000", "--chunk-size", "1000", "--seed", str(seed), "--partitions", str(partitions)]
        assert run_generate(trained_generator.model_dir, out, *flags) == 0
        tables[name] = pd.read_parquet(out)
    assert len(part_files(tmp_path / "p1")) == 1
    assert len(part_files(tmp_path / "p4")) == 4  # four tasks really wrote the second table

    pd.testing.assert_frame_equal(sorted_frame(tables["p1"]), sorted_frame(tables["p4"]))
    assert len(tables["other-seed"]) == 5000
    assert not sorted_frame(tables["p1"]).equals(sorted_frame(tables["other-seed"]))


def test_sample_equals_spark_generation_of_same_rows(trained_generator, tmp_path: Path) -> None:
    generator = FlatGenerator.load(str(trained_generator.model_dir))

    # One task writes one file in chunk order: compare row by row.
    generator_dir, ordered = trained_generator.model_dir, tmp_path / "ordered"
    assert run_generate(generator_dir, ordered,
                        "--rows", "5000", "--chunk-size", "2000", "--seed", "11", "--partitions", "1") == 0
    written = pq.read_table(ordered).to_pandas()
    pd.testing.assert_frame_equal(generator.sample(5000, seed=11, chunk_size=2000), written)
    # Whole chunks are a prefix of a longer generation.
    pd.testing.assert_frame_equal(generator.sample(4000, seed=11, chunk_size=2000), written.head(4000))

    # Default chunk size, several tasks: the same rows (as a set of rows).
    spread = tmp_path / "spread"
    assert run_generate(generator_dir, spread, "--rows", "3000", "--seed", "11", "--partitions", "3") == 0
    pd.testing.assert_frame_equal(sorted_frame(generator.sample(3000, seed=11)), sorted_frame(pd.read_parquet(spread)))


def test_sample_is_first_rows_of_longer_spark_generation(trained_generator, tmp_path: Path) -> None:
    """`FlatGenerator.sample` documents: 'identical to the first n rows Spark generation writes'."""
    generator = FlatGenerator.load(str(trained_generator.model_dir))
    out = tmp_path / "longer"
    assert run_generate(trained_generator.model_dir, out, "--rows", "5000", "--seed", "11", "--partitions", "1") == 0
    written = pq.read_table(out).to_pandas()
    pd.testing.assert_frame_equal(generator.sample(3000, seed=11), written.head(3000))


# ------------------------------------------------------------------------------------------ output formats


def _read_csv(spark, generator: FlatGenerator, path: Path) -> pd.DataFrame:
    first_part = part_files(path)[0]
    assert first_part.read_text().splitlines()[0] == ",".join(TRAINING_COLUMNS)  # a header row
    return spark.read.schema(spark_schema(generator)).option("header", True).csv(str(path)).toPandas()


def _read_delta(spark, generator: FlatGenerator, path: Path) -> pd.DataFrame:
    table = DeltaTable(str(path))
    assert table.version() == 0
    assert [f.name for f in table.schema().fields] == TRAINING_COLUMNS
    return table.to_pandas()


@pytest.mark.parametrize("fmt, reader", [("csv", _read_csv), ("delta", _read_delta)])
def test_csv_and_delta_output(spark, trained_generator, tmp_path: Path, fmt: str, reader) -> None:
    generator = FlatGenerator.load(str(trained_generator.model_dir))
    out = tmp_path / f"out-{fmt}"
    assert run_generate(trained_generator.model_dir, out, "--rows", "1000", "--seed", "5", "--format", fmt) == 0
    expected = sorted_frame(generator.sample(1000, seed=5))
    written = sorted_frame(reader(spark, generator, out))
    pd.testing.assert_frame_equal(written.astype(expected.dtypes.to_dict()), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out-{fmt}"]  # no staging directory left


# ------------------------------------------------------------------------------------------- input kinds


def fast_train_config(tmp_path: Path, **settings) -> Path:
    """Settings the CLI has no flag for: skip the quality summary (it is tested with the shared generator)."""
    return write_yaml(tmp_path / "fast.yaml", {"quality_rows": 0, "progress": False, **settings})


def test_train_from_csv(spark, census_sample: pd.DataFrame, mlflow_store, tmp_path: Path) -> None:
    data = tmp_path / "census.csv"
    census_sample.to_csv(data, index=False)
    model_dir = tmp_path / "model"
    rc = cli.run(["train", "--config", str(fast_train_config(tmp_path)), "--data", str(data),
                  "--model-dir", str(model_dir), "--max-minutes", "0.1", "--tracking-uri", mlflow_store.uri])
    assert rc == 0

    out = tmp_path / "out"
    assert run_generate(model_dir, out, "--rows", "2000") == 0
    source = spark.read.option("header", True).option("inferSchema", True).csv(str(data))
    synthetic = spark.read.parquet(str(out))
    assert synthetic.dtypes == source.dtypes  # CSV's inferred types (int, not bigint) are kept
    assert synthetic.count() == 2000


@pytest.fixture(scope="module")
def table_model(spark, census_sample: pd.DataFrame, mlflow_store, tmp_path_factory) -> dict:
    """Trained from a temp view (by name) with a unique `id` column, excluding `fnlwgt` via `columns:`."""
    root = tmp_path_factory.mktemp("table-input")
    with_id = census_sample.assign(id=np.arange(len(census_sample), dtype=np.int64) * 3 + 100_000)
    with_id.to_parquet(root / "with_id.parquet", index=False)
    spark.read.parquet(str(root / "with_id.parquet")).createOrReplaceTempView("census_with_id")
    config = fast_train_config(root, columns={"fnlwgt": {"exclude": True}})
    model_dir = root / "model"
    rc = cli.run(["train", "--config", str(config), "--data", "census_with_id", "--format", "table",
                  "--model-dir", str(model_dir), "--max-minutes", "0.1", "--tracking-uri", mlflow_store.uri])
    return {"rc": rc, "model_dir": model_dir, "view": "census_with_id", "source_ids": set(with_id["id"])}


def test_train_from_spark_table_name(spark, table_model: dict) -> None:
    assert table_model["rc"] == 0
    stats = json.loads((table_model["model_dir"] / "stats.json").read_text())
    view = spark.table(table_model["view"])
    expected = [(n, t) for n, t in view.dtypes if n != "fnlwgt"]
    assert [(c["name"], c["spark_type"]) for c in stats["columns"]] == expected


def test_key_column_is_not_modelled_and_regenerated_unique(spark, table_model: dict, tmp_path: Path) -> None:
    model_dir = table_model["model_dir"]
    stats = json.loads((model_dir / "stats.json").read_text())
    by_name = {c["name"]: c for c in stats["columns"]}
    assert by_name["id"]["encoding"] == "key"
    assert "values" not in by_name["id"] and "min" not in by_name["id"]  # nothing about the ids is kept
    modelled = [c for c in stats["columns"] if c["encoding"] != "key"]
    assert len(json.loads((model_dir / "model.json").read_text())["column_slices"]) == len(modelled)

    out = tmp_path / "out"
    assert run_generate(model_dir, out, "--rows", "5000", "--chunk-size", "1000", "--partitions", "3") == 0
    ids = spark.read.parquet(str(out)).agg(
        F.count("*").alias("rows"), F.count("id").alias("non_null"), F.count_distinct("id").alias("distinct"),
        F.collect_set("id").alias("ids"),
    ).collect()[0]
    assert (ids["rows"], ids["non_null"], ids["distinct"]) == (5000, 5000, 5000)
    assert not set(ids["ids"]) & table_model["source_ids"]  # regenerated, not copied from the input


def test_excluded_column_is_dropped(spark, table_model: dict, tmp_path: Path) -> None:
    model_dir = table_model["model_dir"]
    stats = json.loads((model_dir / "stats.json").read_text())
    assert stats["excluded"] == ["fnlwgt"]
    out = tmp_path / "out"
    assert run_generate(model_dir, out, "--rows", "500") == 0
    columns = spark.read.parquet(str(out)).columns
    assert "fnlwgt" not in columns
    assert columns == [c for c in spark.table(table_model["view"]).columns if c != "fnlwgt"]


def test_train_and_generate_with_python_api_from_dataframe(
    spark, census_parquet: Path, mlflow_store, tmp_path: Path
) -> None:
    df = spark.read.parquet(str(census_parquet)).where(F.col("age") >= 18).withColumn(
        "age_decade", (F.col("age") / 10).cast("int")
    )
    config = TrainConfig(data=df, model_dir=str(tmp_path / "model"), max_minutes=0.1, quality_rows=0,
                         tracking_uri=mlflow_store.uri, progress=False)
    outcome = train(config, spark)
    assert outcome.model_dir == str(tmp_path / "model")
    assert mlflow_store.client().get_run(outcome.run_id).data.params["data"] == "DataFrame"

    out = tmp_path / "out"
    assert generate(GenerateConfig(model=outcome.model_dir, rows=1500, output=str(out), seed=2), spark) == 1500
    synthetic = spark.read.parquet(str(out))
    assert synthetic.dtypes == df.dtypes
    assert synthetic.count() == 1500
