"""One planted outlier row must leave no trace: not in the generator files, MLflow, or a million synthetic rows.

The row has a category nobody else has and extreme numbers. The generator is trained with a mix of
encodings so that every protection mechanism sees the planted values: ``age`` stays auto (a numeric
column coded as categories: rare values are dropped), ``workclass`` is a string category, and
``capital_gain`` (binned) and ``fnlwgt`` (digits) publish bounds, which must be the k-th smallest and
largest values, never the true extremes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from support.data import CENSUS_DIR

from spark_synth.config import TrainConfig
from spark_synth.encoding.protect import K_MIN
from spark_synth.face import cli
from spark_synth.generators.flat import FILES
from spark_synth.stages.train import train

PLANTED_CATEGORY = "Planted-Unique-Category-XYZ"
PLANTED_GAIN = 987_654_321
PLANTED_AGE = 150
# How the planted values could be spelled in any text or binary file.
PLANTED_SPELLINGS = [PLANTED_CATEGORY.encode(), b"Planted-Unique", str(PLANTED_GAIN).encode(), b"9.87654321"]
SYNTHETIC_ROWS = 1_000_000


@pytest.fixture(scope="module")
def planted(spark, tmp_path_factory, mlflow_store) -> dict:
    root = tmp_path_factory.mktemp("privacy")
    pdf = pd.read_parquet(CENSUS_DIR / "census_train.parquet").sample(3000, random_state=123)
    pdf = pdf.reset_index(drop=True)
    row = 1234
    pdf.loc[row, "workclass"] = PLANTED_CATEGORY
    pdf.loc[row, "capital_gain"] = PLANTED_GAIN
    pdf.loc[row, "age"] = PLANTED_AGE
    data = root / "planted.parquet"
    pdf.to_parquet(data, index=False)

    mlflow_store.experiment("privacy")
    model_dir = root / "model"
    config = TrainConfig(
        data=str(data), model_dir=str(model_dir), max_minutes=0.15, quality_rows=500, experiment="privacy",
        tracking_uri=mlflow_store.uri, progress=False,
        columns={"capital_gain": {"encoding": "binned"}, "fnlwgt": {"encoding": "digits"}},
    )
    outcome = train(config, spark)
    return {"pdf": pdf, "model_dir": model_dir, "outcome": outcome, "root": root,
            "stats": json.loads((model_dir / "stats.json").read_text())}


def find_planted(directory: Path) -> list[str]:
    """'file: spelling' for every planted value found in any file under ``directory``."""
    hits = []
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            content = Path(dirpath, name).read_bytes()
            hits += [f"{Path(dirpath, name)}: {s!r}" for s in PLANTED_SPELLINGS if s in content]
    return hits


def test_setup_exercises_every_protection(planted: dict) -> None:
    columns = {c["name"]: c for c in planted["stats"]["columns"]}
    assert columns["workclass"]["encoding"] == "categorical"
    assert columns["age"]["encoding"] == "categorical"
    assert columns["capital_gain"]["encoding"] == "binned"
    assert columns["fnlwgt"]["encoding"] == "digits"


def test_generator_files_hold_no_planted_values(planted: dict) -> None:
    model_dir = planted["model_dir"]
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(FILES)
    assert find_planted(model_dir) == []
    columns = {c["name"]: c for c in planted["stats"]["columns"]}
    assert PLANTED_CATEGORY not in columns["workclass"]["values"]
    assert PLANTED_AGE not in columns["age"]["values"]
    assert max(columns["age"]["values"]) < PLANTED_AGE
    assert columns["capital_gain"]["max"] < PLANTED_GAIN
    assert max(columns["capital_gain"]["edges"] + columns["capital_gain"]["point_masses"]) < PLANTED_GAIN


def test_published_values_are_held_by_at_least_k_rows(planted: dict) -> None:
    """Categories kept and numeric bounds are values at least K_MIN rows share: never one row's value."""
    pdf = planted["pdf"]
    bounded = []
    for column in planted["stats"]["columns"]:
        values = pdf[column["name"]]
        if "values" in column:
            counts = values.value_counts()
            assert all(counts.get(v, 0) >= K_MIN for v in column["values"]), column["name"]
        if "min" in column:
            bounded.append(column["name"])
            ordered = np.sort(values.dropna().to_numpy())
            assert column["min"] >= ordered[K_MIN - 1], column["name"]
            assert column["max"] <= ordered[-K_MIN], column["name"]
    assert sorted(bounded) == ["capital_gain", "fnlwgt"]

    by_name = {c["name"]: c for c in planted["stats"]["columns"]}
    # The bounds are not the sample's true extremes (fnlwgt's are unique values, capital_gain's max is planted).
    assert by_name["fnlwgt"]["min"] > pdf["fnlwgt"].min()
    assert by_name["fnlwgt"]["max"] < pdf["fnlwgt"].max()
    assert by_name["capital_gain"]["max"] < pdf["capital_gain"].max() == PLANTED_GAIN


def test_mlflow_run_holds_no_planted_values(planted: dict, mlflow_store, tmp_path: Path) -> None:
    import mlflow

    outcome = planted["outcome"]
    run = mlflow_store.client().get_run(outcome.run_id)
    text = json.dumps({"params": run.data.params, "tags": run.data.tags, "metrics": run.data.metrics})
    assert not [s for s in PLANTED_SPELLINGS if s.decode() in text]
    assert PLANTED_GAIN not in run.data.metrics.values()

    mlflow_store.activate()
    run_files = Path(mlflow.artifacts.download_artifacts(run_id=outcome.run_id, dst_path=str(tmp_path / "run")))
    model_files = Path(mlflow.artifacts.download_artifacts(artifact_uri=outcome.model_uri,
                                                           dst_path=str(tmp_path / "model")))
    downloaded = [f for root in (run_files, model_files) for f in root.rglob("*") if f.is_file()]
    assert any(p.name == "stats.json" for p in downloaded)  # the generator files really were downloaded
    assert any(p.name == "MLmodel" for p in downloaded)  # ... and the pyfunc with its signature
    assert find_planted(run_files) == []
    assert find_planted(model_files) == []


def test_million_synthetic_rows_hold_no_planted_values(spark, planted: dict, tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    rc = cli.run(["generate", "--model", str(planted["model_dir"]), "--rows", str(SYNTHETIC_ROWS),
                  "--output", str(out), "--seed", "99"])
    assert rc == 0
    columns = {c["name"]: c for c in planted["stats"]["columns"]}
    df = spark.read.parquet(str(out))
    summary = df.agg(
        F.count("*").alias("rows"),
        F.count_if(F.col("workclass") == PLANTED_CATEGORY).alias("planted_category"),
        F.max("capital_gain").alias("max_gain"),
        F.max("age").alias("max_age"),
        F.min("fnlwgt").alias("min_fnlwgt"),
        F.max("fnlwgt").alias("max_fnlwgt"),
        F.min("capital_gain").alias("min_gain"),
    ).collect()[0]
    assert summary["rows"] == SYNTHETIC_ROWS
    assert summary["planted_category"] == 0
    assert summary["max_gain"] < PLANTED_GAIN
    assert summary["max_age"] < PLANTED_AGE
    # Nothing outside what the stats publish: bounds hold, categories come from the kept list (or _RARE_).
    assert columns["capital_gain"]["min"] <= summary["min_gain"] <= summary["max_gain"] <= columns["capital_gain"]["max"]
    assert columns["fnlwgt"]["min"] <= summary["min_fnlwgt"] <= summary["max_fnlwgt"] <= columns["fnlwgt"]["max"]
    workclasses = {r[0] for r in df.select("workclass").distinct().collect()} - {None}
    assert workclasses <= set(columns["workclass"]["values"]) | {"_RARE_"}
    ages = {r[0] for r in df.select("age").distinct().collect()} - {None}
    assert ages <= set(columns["age"]["values"])
    # No column without nulls in the training data gets any (a null is a code the model never saw).
    nulls = df.agg(*[F.count_if(F.col(c).isNull()).alias(c) for c in df.columns]).collect()[0].asDict()
    never_null = [c for c in df.columns if not columns[c]["has_nulls"]]
    assert {c: nulls[c] for c in never_null if nulls[c]} == {}


def test_console_output_and_errors_hold_no_planted_values(planted: dict, mlflow_store, tmp_path: Path,
                                                           capfd) -> None:
    """Everything `spark-synth train` prints (progress, figures, warnings) and the error of a refused run name
    columns and protected statistics, never a raw value of the data."""
    data = planted["root"] / "planted.parquet"
    capfd.readouterr()
    rc = cli.run(["train", "--data", str(data), "--model-dir", str(tmp_path / "model"), "--max-minutes", "0.1",
                  "--tracking-uri", mlflow_store.uri, "--experiment", "privacy"])
    refused = cli.run(["train", "--data", str(data), "--model-dir", str(tmp_path / "other"), "--target", "wealth",
                       "--tracking-uri", mlflow_store.uri, "--experiment", "privacy"])
    said = capfd.readouterr()
    text = said.out + said.err
    assert rc == 0 and refused == 2 and "error: " in said.err
    assert "workclass" in text  # the output does talk about the columns
    assert [s for s in PLANTED_SPELLINGS if s.decode() in text] == []


def test_a_unique_numbers_digits_never_come_out_whole(spark, mlflow_store, tmp_path: Path) -> None:
    """Digit coding learns each decimal digit as a code. The planted 147 is inside the protected bounds and its
    tens digit is the only 4 in the table: a mask that allows codes one row holds would let it (and all of
    the 140s) be generated. Codes need k rows, so none of the 140s come out of a large sample."""
    from spark_synth.generators.flat import FlatGenerator

    rng = np.random.default_rng(7)
    low, high, planted = 100, 169, 147
    values = np.concatenate([[low] * 10, rng.integers(100, 130, 200), rng.integers(160, 170, 40), [high] * 10,
                             [planted]])
    frame = pd.DataFrame({"n": values.astype("int32"), "c": rng.choice(["a", "b"], len(values))})
    config = TrainConfig(data=spark.createDataFrame(frame), model_dir=str(tmp_path / "model"), max_minutes=0.1,
                         quality_rows=0, experiment="privacy", tracking_uri=mlflow_store.uri, progress=False,
                         columns={"n": {"encoding": "digits"}})
    train(config, spark)
    n = next(c for c in json.loads((tmp_path / "model" / "stats.json").read_text())["columns"] if c["name"] == "n")
    assert (n["encoding"], n["min"], n["max"]) == ("digits", low, high)  # 147 is not clipped away
    tens = (values - low) // 10
    assert (tens == (planted - low) // 10).sum() == 1  # its tens digit is its own: one row holds the code

    sample = FlatGenerator.load(str(tmp_path / "model")).sample(200_000, seed=3)["n"].to_numpy()
    assert not ((sample >= 140) & (sample < 150)).any()
    assert planted not in sample
    assert set(np.unique((sample - low) // 10)) <= {0, 1, 2, 6}  # only digits k rows share
