"""MLflow tracking and registry: what a training run records, the registered pyfunc, and failed trainings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from spark_synth.face import cli
from spark_synth.generators.flat import FILES, FlatGenerator

TRAINING_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]


def sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns), kind="mergesort").reset_index(drop=True)


def registered_uri(trained) -> str:
    return f"models:/{trained.registered_name}/1"


# --------------------------------------------------------------------------------------------- the run


def test_run_has_params(trained_generator, census_sample: pd.DataFrame) -> None:
    run = trained_generator.store.client().get_run(trained_generator.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["data"] == str(trained_generator.data)
    assert params["model_dir"] == str(trained_generator.model_dir)
    assert params["max_minutes"] == "0.2"
    assert params["seed"] == "0"
    assert trained_generator.registered_name in params.values()  # the registry name (whatever the key)
    assert params["n_columns"] == str(len(json.loads((trained_generator.model_dir / "model.json").read_text())
                                          ["column_slices"]))
    assert int(params["train_rows"]) + int(params["validation_rows"]) == len(census_sample)
    assert int(params["hidden"]) > 0
    assert "tracking_uri" not in params  # may hold credentials


def test_run_has_per_epoch_and_quality_metrics(trained_generator) -> None:
    client = trained_generator.store.client()
    run = client.get_run(trained_generator.run_id)
    metrics = run.data.metrics
    epochs = int(metrics["epochs"])
    assert epochs >= 1
    meta = json.loads((trained_generator.model_dir / "meta.json").read_text())
    assert meta["epochs"] == epochs and meta["mlflow_run_id"] == trained_generator.run_id

    for name in ("val_loss", "train_loss"):
        history = sorted(client.get_metric_history(trained_generator.run_id, name), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, epochs + 1)), name
    val_losses = [m.value for m in client.get_metric_history(trained_generator.run_id, "val_loss")]
    assert min(val_losses) <= metrics["best_val_loss"] <= min(val_losses) + 1e-4
    assert 1 <= metrics["best_epoch"] <= epochs

    for name in ("eval_accuracy_univariate", "eval_accuracy_bivariate", "eval_accuracy_trivariate", "eval_dcr_share",
                 "eval_membership_auc", "eval_accuracy_expected_overall"):
        assert 0.0 < metrics[name] <= 1.0, name
    assert "evaluation/report.html" in {a.path for a in client.list_artifacts(trained_generator.run_id, "evaluation")}
    assert metrics["total_seconds"] >= metrics["train_seconds"] > 0


def test_run_has_generator_artifacts(trained_generator, tmp_path: Path) -> None:
    import mlflow

    client = trained_generator.store.client()
    listed = {Path(a.path).name for a in client.list_artifacts(trained_generator.run_id, "generator")}
    assert listed == set(FILES)
    trained_generator.store.activate()
    local = Path(mlflow.artifacts.download_artifacts(run_id=trained_generator.run_id, artifact_path="generator",
                                                     dst_path=str(tmp_path)))
    for name in FILES:
        assert (local / name).read_bytes() == (trained_generator.model_dir / name).read_bytes(), name

    version = client.get_model_version(trained_generator.registered_name, "1")
    assert version.run_id == trained_generator.run_id
    assert version.status == "READY"


# ------------------------------------------------------------------------------------ registered pyfunc


def test_registered_pyfunc_predicts_rows_deterministically(trained_generator) -> None:
    import mlflow

    trained_generator.store.activate()
    model = mlflow.pyfunc.load_model(registered_uri(trained_generator))
    request = pd.DataFrame({"rows": [7], "seed": [3]})
    first = model.predict(request)
    assert len(first) == 7
    assert list(first.columns) == TRAINING_COLUMNS
    pd.testing.assert_frame_equal(first, model.predict(request))
    pd.testing.assert_frame_equal(first, mlflow.pyfunc.load_model(registered_uri(trained_generator)).predict(request))
    # The same rows the generator files give, and other rows for another seed.
    local = FlatGenerator.load(str(trained_generator.model_dir))
    pd.testing.assert_frame_equal(first, local.sample(7, seed=3))
    assert not first.equals(model.predict(pd.DataFrame({"rows": [7], "seed": [4]})))
    # Several requests in one call: their rows, one after the other.
    both = model.predict(pd.DataFrame({"rows": [2, 3], "seed": [3, 4]}))
    assert len(both) == 5
    pd.testing.assert_frame_equal(both.head(2), local.sample(2, seed=3))


def test_registered_pyfunc_seed_is_optional(trained_generator) -> None:
    """mlflow_model.py: 'predict takes a DataFrame with a rows column (and optionally seed)'."""
    import mlflow

    trained_generator.store.activate()
    model = mlflow.pyfunc.load_model(registered_uri(trained_generator))
    out = model.predict(pd.DataFrame({"rows": [4]}))
    pd.testing.assert_frame_equal(out, FlatGenerator.load(str(trained_generator.model_dir)).sample(4, seed=0))


def test_cli_generate_from_registry(spark, trained_generator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = cli.run(["generate", "--model", registered_uri(trained_generator), "--tracking-uri",
                  trained_generator.store.uri, "--rows", "500", "--seed", "3", "--output", str(out)])
    assert rc == 0
    expected = FlatGenerator.load(str(trained_generator.model_dir)).sample(500, seed=3)
    pd.testing.assert_frame_equal(sorted_frame(pd.read_parquet(out)), sorted_frame(expected))


def test_cli_generate_from_unknown_registered_version(spark, trained_generator, tmp_path: Path, capsys) -> None:
    uri = f"models:/{trained_generator.registered_name}/99"
    out = tmp_path / "out"
    rc = cli.run(["generate", "--model", uri, "--tracking-uri", trained_generator.store.uri, "--rows", "5",
                  "--output", str(out)])
    stderr = capsys.readouterr().err
    assert rc == 2
    assert uri in stderr and "fix:" in stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------------ failed runs


@pytest.mark.parametrize("failure", ["invalid-register-name", "deleted-experiment"])
def test_failed_training_leaves_no_model_dir(spark, census_parquet: Path, mlflow_store, tmp_path: Path, capsys,
                                            failure: str) -> None:
    """Bad input MLflow only rejects once the data has been read and encoded: exit 2, no generator saved."""
    experiment = f"failed-{failure}"
    experiment_id = mlflow_store.experiment(experiment)
    flags = ["--experiment", experiment]
    if failure == "invalid-register-name":
        named = "bad/name"
        flags += ["--register", named]
    else:
        named = experiment
        mlflow_store.client().delete_experiment(experiment_id)
    model_dir = tmp_path / "model"
    argv = ["train", "--data", str(census_parquet), "--model-dir", str(model_dir), "--max-minutes", "0.05",
            "--tracking-uri", mlflow_store.uri, "--no-progress", *flags]
    try:
        outcome: object = cli.run(argv)
    except Exception as exc:  # noqa: BLE001 - reported below, after the model dir check
        outcome = exc
    stderr = capsys.readouterr().err

    assert not model_dir.exists(), f"failed training left {model_dir} behind (cli.run -> {outcome!r})"
    assert outcome == 2, f"expected exit status 2, got {outcome!r}"
    assert named in stderr and "fix:" in stderr
    runs = mlflow_store.client().search_runs([experiment_id], run_view_type=3)  # ViewType.ALL
    assert [r.info.status for r in runs if r.info.status != "FAILED"] == []
