"""`spark-synth evaluate` end to end on census samples: the audit catches a leak and stays quiet on a
holdout, the report is self-contained, MLflow gets every headline figure, bad input is refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.data import CENSUS_DIR

from spark_synth.config import EvaluateConfig
from spark_synth.evaluation.matches import identical_shares
from spark_synth.evaluation.membership import planted_leak
from spark_synth.face import cli
from spark_synth.stages.evaluate import run_evaluation

HOLDOUT = CENSUS_DIR / "census_holdout.parquet"


@pytest.fixture(scope="module")
def files(tmp_path_factory, census_parquet, census_sample) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("evaluate")
    holdout = pd.read_parquet(HOLDOUT).sample(1_200, random_state=1).reset_index(drop=True)
    paths = {name: folder / f"{name}.parquet" for name in ("holdout", "leaky", "half_a", "half_b")}
    holdout.iloc[:600].to_parquet(paths["half_a"], index=False)
    holdout.iloc[600:].to_parquet(paths["half_b"], index=False)
    holdout.to_parquet(paths["holdout"], index=False)
    planted_leak(census_sample, 0.1, seed=0).to_parquet(paths["leaky"], index=False)
    with_ids = {}
    for name, frame, start in (("training", census_sample, 0), ("half_a", holdout.iloc[:600], 10_000),
                               ("half_b", holdout.iloc[600:], 20_000)):  # unique keys, as a generator writes
        with_ids[name] = folder / f"{name}_with_ids.parquet"
        frame.assign(person_id=np.arange(start, start + len(frame))).to_parquet(with_ids[name], index=False)
    return {"training": census_parquet, **paths, "with_ids": with_ids}


def test_leaky_synthetic_data_is_flagged_and_reported(files, tmp_path, mlflow_store, capsys) -> None:
    report = tmp_path / "leaky.html"
    rc = cli.run(["evaluate", "--synthetic", str(files["leaky"]), "--training", str(files["training"]),
                  "--holdout", str(files["holdout"]), "--target", "income", "--report", str(report),
                  "--tracking-uri", mlflow_store.uri])
    assert rc == 0
    out = capsys.readouterr().out
    figures = {m[0]: float(m[1]) for m in re.findall(r"^\s+(\w+)\s+([-\d.]+)$", out, re.M)}
    assert figures["membership_auc_low"] > 0.6  # members have near copies among the synthetic rows
    assert figures["dcr_share"] > 0.7
    assert figures["identical_training"] > 0.05 > figures["identical_holdout"]
    assert figures["utility_tstr"] > 0.8 and "accuracy_trivariate" in figures

    html = report.read_text()
    assert html.count("data:image/png;base64,") >= 5  # distributions, associations, DCR, ROC, importances
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained, static
    run_id = re.search(r"MLflow run (\w+)", out).group(1)
    client = mlflow_store.client()
    run = client.get_run(run_id)
    assert run.data.metrics["eval_membership_auc"] == pytest.approx(figures["membership_auc"], abs=1e-4)
    assert {"eval_accuracy_overall", "eval_dcr_share", "eval_utility_tstr"} <= set(run.data.metrics)
    logged = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert logged == {"evaluation/report.html", "evaluation/evaluation.json"}


def test_a_holdout_sample_looks_like_fresh_data(spark, files) -> None:
    with_ids = files["with_ids"]
    config = EvaluateConfig(synthetic=str(with_ids["half_a"]), training=str(with_ids["training"]),
                            holdout=str(with_ids["half_b"]), mlflow=False, progress=False)
    evaluation = run_evaluation(config, spark).evaluation
    headline = evaluation.headline
    assert "person_id" not in evaluation.result["accuracy"]["per_column"]  # identifiers are not compared
    assert 0.4 < headline["membership_auc"] < 0.6
    assert headline["membership_auc_low"] < 0.5 < headline["membership_auc_high"] + 0.03
    assert 0.4 < headline["dcr_share"] < 0.6
    assert headline["accuracy_overall"] > 0.85  # real data from the same population


def test_identical_shares_are_exact(spark) -> None:
    training = spark.createDataFrame(pd.DataFrame({"a": list(range(10)), "b": ["x"] * 9 + [None]}))
    holdout = spark.createDataFrame(pd.DataFrame({"a": [100, 101, 102, 103, 104, 105, 106, 107, 108, 9],
                                                  "b": ["y"] * 9 + [None]}))
    synthetic = spark.createDataFrame(pd.DataFrame({"a": [0, 1, 2, 9, 50, 51, 52, 53, 54, 55],
                                                    "b": ["x", "x", "x", None, "x", "x", "x", "x", "x", "x"]}))
    shares = identical_shares(synthetic, training, holdout, ["a", "b"], 10, 10)
    assert shares == {"identical_training": 0.4, "identical_holdout": 0.1, "identical_training_all": 0.4}


def test_model_option_logs_into_the_generators_run(files, trained_generator, tmp_path) -> None:
    """Each evaluation adds a point to the metrics' history and a report folder beside the after-training one
    (other tests may have evaluated the shared generator before: counted, not assumed)."""
    client = trained_generator.store.client()

    def evaluation_folders() -> set[str]:
        return {a.path for a in client.list_artifacts(trained_generator.run_id) if a.path.startswith("evaluation")}

    points = len(client.get_metric_history(trained_generator.run_id, "eval_dcr_share"))
    folders = evaluation_folders()
    assert points >= 1 and "evaluation" in folders  # the after-training evaluation
    synthetic = tmp_path / "synthetic"
    assert cli.run(["generate", "--model", str(trained_generator.model_dir), "--rows", "800",
                    "--output", str(synthetic)]) == 0
    assert cli.run(["evaluate", "--synthetic", str(synthetic), "--training", str(files["training"]),
                    "--holdout", str(files["holdout"]), "--model", str(trained_generator.model_dir),
                    "--tracking-uri", trained_generator.store.uri, "--no-progress"]) == 0
    assert len(client.get_metric_history(trained_generator.run_id, "eval_dcr_share")) == points + 1
    added = evaluation_folders() - folders
    assert len(added) == 1 and folders <= evaluation_folders()  # a new report; the after-training one is kept


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--synthetic": "dropped"}, "lacks the column(s) ['income']"),
        ({"--holdout": "empty"}, "holdout data has no rows"),
        ({"--report": "report.txt"}, "is not an .html file name"),
        ({"--target": "salary"}, "target column 'salary' is not in the training data"),
    ],
)
def test_bad_input_is_refused_with_the_fix(files, tmp_path, capsys, change, message, census_sample) -> None:
    census_sample.drop(columns=["income"]).to_parquet(tmp_path / "dropped.parquet", index=False)
    census_sample.iloc[:0].to_parquet(tmp_path / "empty.parquet", index=False)
    argv = {"--synthetic": str(files["half_a"]), "--training": str(files["training"]),
            "--holdout": str(files["half_b"]), "--report": str(tmp_path / "report.html")}
    for flag, value in change.items():
        argv[flag] = str(tmp_path / f"{value}.parquet") if flag != "--report" and flag != "--target" else (
            str(tmp_path / value) if flag == "--report" else value)
    rc = cli.run(["evaluate", *[x for kv in argv.items() for x in kv], "--no-mlflow", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "fix:" in err
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "report.txt").exists()
    assert not list(tmp_path.glob(".report-*"))
