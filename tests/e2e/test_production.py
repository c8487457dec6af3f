"""Production use: the pipeline job under spark-submit, catalog tables, registry aliases behind a quality
gate, configs from any URI Spark reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support.commands import assert_rejected

from spark_synth.face import cli

ROOT = Path(__file__).resolve().parents[2]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


@pytest.mark.parametrize("master", ["local-cluster[2,1,1024]"])  # executors in their own JVMs, as on a cluster
def test_spark_submit_runs_the_census_pipeline(master, census_parquet, census_sample, mlflow_store,
                                               tmp_path) -> None:
    """`spark-submit jobs/pipeline.py --config conf/census.yaml` end to end: train, evaluate behind the gate,
    promote, generate (made small with --set: a census sample, a short training, a lower gate, the gate's
    evaluation only; on local-cluster the Spark work runs in executor JVMs)."""
    name = "census_pipeline_" + master.split("[")[0].replace("-", "_")
    holdout = tmp_path / "holdout.parquet"
    census_sample.tail(1000).to_parquet(holdout, index=False)
    argv = [str(SPARK_SUBMIT), "--master", master, "--driver-memory", "2g", "jobs/pipeline.py",
            "--config", "conf/census.yaml", "--tracking-uri", mlflow_store.uri,
            "--set", f"data={census_parquet}", "--set", "max_minutes=0.2", "--set", "quality_rows=0", "--set", f"model_dir={tmp_path / 'model'}",
            "--set", f"register={name}", "--set", f"evaluate.holdout={holdout}", "--set", "evaluate.rows=2000",
            "--set", "evaluate.min_accuracy=0.75", "--set", f"evaluate.report={tmp_path / 'report.html'}",
            "--set", "evaluate.promote=champion", "--set", "generate.rows=30000",
            "--set", f"generate.output={tmp_path / 'synthetic'}", "--no-progress"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    synthetic = pd.read_parquet(tmp_path / "synthetic")
    assert len(synthetic) == 30_000 and list(synthetic.columns) == list(census_sample.columns)
    assert (tmp_path / "report.html").stat().st_size > 10_000
    version = mlflow_store.client().get_model_version_by_alias(name, "champion")
    assert str(version.version) == "1" and f"models:/{name}@champion -> version 1" in done.stdout


def test_generate_writes_catalog_tables_with_modes_and_partitions(spark, trained_generator, tmp_path, capsys,
                                                                   digest) -> None:
    base = ["generate", "--model", str(trained_generator.model_dir), "--format", "table", "--seed", "1"]
    spark.sql("CREATE DATABASE IF NOT EXISTS synth")
    assert cli.run([*base, "--rows", "300", "--output", "synth.census", "--partition-by", "sex"]) == 0
    table = spark.table("synth.census")
    assert table.count() == 300 and set(table.columns) == set(pd.read_parquet(trained_generator.data).columns)
    assert "sex" in spark.sql("DESCRIBE TABLE EXTENDED synth.census").toPandas().to_string()
    assert_rejected([*base, "--rows", "10", "--output", "synth.census"], capsys, digest, [tmp_path],
                    ["already exists"], ["--mode overwrite"])
    assert spark.table("synth.census").count() == 300  # a refused write leaves the table as it was
    assert cli.run([*base, "--rows", "120", "--output", "synth.census", "--mode", "overwrite"]) == 0
    assert spark.table("synth.census").count() == 120
    assert cli.run([*base, "--rows", "80", "--output", "synth.census", "--mode", "append"]) == 0
    assert spark.table("synth.census").count() == 200
    assert not [t.name for t in spark.catalog.listTables("synth") if t.name.startswith("_spark_synth_tmp")]
    assert_rejected([*base, "--rows", "10", "--output", "synth.census/x"], capsys, digest, [tmp_path],
                    ["not a table name"], ["catalog.schema.table"])


def test_the_quality_gate_decides_the_alias(trained_generator, census_sample, tmp_path, capsys, digest) -> None:
    """evaluate --model ... --rows: a failed gate exits non-zero and moves no alias; a passed one moves it."""
    holdout = tmp_path / "holdout.parquet"
    census_sample.tail(800).to_parquet(holdout, index=False)
    name, store = trained_generator.registered_name, trained_generator.store
    # `train --alias candidate` pointed the alias at the version it registered, in the --tracking-uri store
    assert str(store.client().get_model_version_by_alias(name, "candidate").version) == "1"
    argv = ["evaluate", "--model", f"models:/{name}/1", "--rows", "1500", "--training", str(trained_generator.data),
            "--holdout", str(holdout), "--promote", "gold", "--tracking-uri", store.uri, "--no-progress"]
    assert_rejected([*argv, "--min-accuracy", "0.999"], capsys, digest, [holdout], ["quality gate failed",
                    "was not promoted"], ["--min-accuracy"])
    assert "gold" not in store.client().get_registered_model(name).aliases
    assert cli.run([*argv, "--min-accuracy", "0.3"]) == 0
    assert str(store.client().get_model_version_by_alias(name, "gold").version) == "1"
    assert "alias 'gold' now points at version 1" in capsys.readouterr().out


def test_configs_load_from_a_uri_spark_reads(spark, trained_generator, tmp_path) -> None:
    config = tmp_path / "generate.yaml"
    config.write_text(f"model: {trained_generator.model_dir}\nrows: 50\noutput: {tmp_path / 'out'}\n")
    assert cli.run(["generate", "--config", f"file://{config}"]) == 0  # read through Spark's Hadoop filesystem
    assert len(pd.read_parquet(tmp_path / "out")) == 50
