"""Generate and evaluate through Spark Connect: a server started from the PySpark package, a thin client.

The client is the CLI in its own process (PySpark allows no Connect session beside a classic one):
DataFrame APIs only, no SparkContext, no RDDs, no JVM. The generated table must be the very rows a
classic session writes for the same generator, seed and chunk size.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyspark
import pytest
from support.servers import accepts, free_port, running

from spark_synth.generators.flat import FlatGenerator

SBIN = Path(pyspark.__file__).parent / "sbin"


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory) -> str:
    port = free_port()
    logs = tmp_path_factory.mktemp("connect")
    argv = [str(SBIN / "start-connect-server.sh"), "--wait", "--master", "local[2]", "--driver-memory", "2g",
            "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.sql.shuffle.partitions=4",
            "--conf", "spark.ui.enabled=false"]
    env = {"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(logs),
           "SPARK_PID_DIR": str(logs)}
    with running(argv, accepts(port), logs / "server.log", env):
        yield f"sc://127.0.0.1:{port}"


def thin_client(*argv: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh process whose only Spark is the Connect client."""
    done = subprocess.run([sys.executable, "-m", "spark_synth.face.cli", *argv], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Py4J" not in done.stderr and "SparkContext" not in done.stderr
    return done


def test_generate_over_spark_connect_writes_the_classic_rows(connect_url, trained_generator, tmp_path) -> None:
    output = tmp_path / "synthetic"
    thin_client("generate", "--model", str(trained_generator.model_dir), "--rows", "700", "--chunk-size", "300",
                "--seed", "4", "--output", str(output), "--remote", connect_url)
    remote = pd.read_parquet(output)
    local = FlatGenerator.load(str(trained_generator.model_dir)).sample(700, seed=4, chunk_size=300)
    key = list(local.columns)
    pd.testing.assert_frame_equal(remote.sort_values(key).reset_index(drop=True),
                                  local.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_evaluate_over_spark_connect(connect_url, trained_generator, census_sample, tmp_path) -> None:
    synthetic = tmp_path / "synthetic.parquet"
    FlatGenerator.load(str(trained_generator.model_dir)).sample(1500, seed=1).to_parquet(synthetic, index=False)
    holdout = tmp_path / "holdout.parquet"
    census_sample.tail(1000).to_parquet(holdout, index=False)
    report = tmp_path / "report.html"
    done = thin_client("evaluate", "--synthetic", str(synthetic), "--training", str(trained_generator.data),
                       "--holdout", str(holdout), "--target", "income", "--report", str(report), "--no-mlflow",
                       "--no-progress", "--remote", connect_url)
    figures = dict(line.split() for line in done.stdout.splitlines() if line.startswith("  "))
    assert 0.5 < float(figures["accuracy_overall"]) <= 1 and 0 <= float(figures["dcr_share"]) <= 1
    assert "utility_tstr" in figures and report.read_text().count("data:image/png;base64,") >= 3
