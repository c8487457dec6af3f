"""Controlled generation end to end: seeded, rebalanced, fair and imputed tables through the CLI and the
MLflow pyfunc, with the generator trained once for the session (tests/conftest.py)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from support.commands import assert_rejected

from spark_synth.face import cli


def _read(path) -> pd.DataFrame:
    return pd.read_parquet(path)


def _generate(trained_generator, output, *extra: str) -> int:
    return cli.run(["generate", "--model", str(trained_generator.model_dir), "--output", str(output),
                    "--tracking-uri", trained_generator.store.uri, *extra])


def test_seeded_generation_keeps_the_seed_and_generates_the_rest(trained_generator, census_sample, tmp_path) -> None:
    seed = census_sample[["sex", "age", "education"]].head(300)
    seed.to_parquet(tmp_path / "seed.parquet", index=False)
    assert _generate(trained_generator, tmp_path / "out", "--seed-data", str(tmp_path / "seed.parquet"), "--seed", "5") == 0
    out = _read(tmp_path / "out")
    assert len(out) == 300 and list(out.columns) == list(census_sample.columns)
    key = ["sex", "age", "education"]
    pd.testing.assert_frame_equal(out[key].sort_values(key).reset_index(drop=True),
                                  seed.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert out["income"].notna().all() and out["occupation"].nunique() > 3  # the rest is generated


def test_rebalancing_gives_the_target_shares(trained_generator, tmp_path) -> None:
    assert _generate(trained_generator, tmp_path / "out", "--rows", "6000", "--rebalance", "income",
                     "--share", ">50K=0.5", "--share", "<=50K=0.5") == 0
    share = (_read(tmp_path / "out")["income"] == ">50K").mean()
    assert share == pytest.approx(0.5, abs=0.03)  # 6,000 rows: 0.65% standard error


def test_fairness_makes_the_target_independent_of_the_sensitive_column(trained_generator, tmp_path) -> None:
    assert _generate(trained_generator, tmp_path / "out", "--rows", "20000", "--fair-target", "income",
                     "--fair-sensitive", "sex") == 0
    out = _read(tmp_path / "out")
    rates = out.groupby("sex")["income"].apply(lambda s: (s == ">50K").mean())
    assert abs(rates["Male"] - rates["Female"]) < 0.03, rates.to_dict()


def test_imputation_fills_only_the_nulls_of_the_chosen_columns(trained_generator, census_sample, tmp_path,
                                                                digest) -> None:
    holes = census_sample.head(800).copy()
    holes.insert(0, "row_id", np.arange(len(holes)))
    holes["age"] = holes["age"].astype("float64")
    rng = np.random.default_rng(0)
    for column in ("occupation", "age", "workclass"):
        holes.loc[rng.random(len(holes)) < 0.2, column] = None
    source = tmp_path / "holes.parquet"
    holes.to_parquet(source, index=False)
    before = digest(source)
    assert cli.run(["impute", "--model", str(trained_generator.model_dir), "--data", str(source), "--columns",
                    "occupation,age", "--output", str(tmp_path / "out"), "--tracking-uri",
                    trained_generator.store.uri]) == 0
    out = _read(tmp_path / "out").sort_values("row_id").reset_index(drop=True)
    assert digest(source) == before and len(out) == len(holes)
    assert out[["occupation", "age"]].notna().all().all()
    assert out["workclass"].isna().sum() == holes["workclass"].isna().sum()  # not chosen: its nulls stay
    present = holes.notna()
    for column in holes.columns:
        kept = present[column].to_numpy()
        assert (out[column].to_numpy()[kept] == holes[column].to_numpy()[kept]).all(), column


def test_the_pyfunc_takes_seed_rows_and_sampling_params(trained_generator, census_sample) -> None:
    model = mlflow.pyfunc.load_model(f"runs:/{trained_generator.run_id}/pyfunc")
    seed = census_sample[["sex", "race"]].head(40)
    out = model.predict(seed, params={"seed": 3, "temperature": 0.8})
    assert len(out) == 40 and (out["sex"].to_numpy() == seed["sex"].to_numpy()).all()
    rebalanced = model.predict(pd.DataFrame({"rows": [3000]}), params={
        "rebalance": "income", "shares": json.dumps({">50K": 0.7, "<=50K": 0.3})})
    assert (rebalanced["income"] == ">50K").mean() == pytest.approx(0.7, abs=0.04)


@pytest.mark.parametrize("argv,names,fix", [
    (["--rows", "10", "--rebalance", "income", "--share", ">50K=0.5", "--share", "<=50K=0.2"], ["add up to 1"],
     ["--share"]),
    (["--rows", "10", "--rebalance", "income", "--share", "rich=1"], ["'rich'"], ["values as they appear"]),
    (["--rows", "10", "--rebalance", "fnlwgt", "--share", "30=1"], ["not categorical"], ["categorical column"]),
    (["--rows", "10", "--fair-target", "income"], ["both a target and a sensitive"], ["--fair-sensitive"]),
    (["--rows", "10", "--top-p", "0"], ["top_p"], ["Correct the setting"]),
])
def test_bad_controls_are_refused(trained_generator, tmp_path, capsys, digest, argv, names, fix) -> None:
    output = tmp_path / "out"
    assert_rejected(["generate", "--model", str(trained_generator.model_dir), "--output", str(output),
                     "--tracking-uri", trained_generator.store.uri, *argv], capsys, digest,
                    [trained_generator.model_dir], names, fix)
    assert not output.exists()


def test_a_seed_with_an_unknown_column_is_refused(trained_generator, census_sample, tmp_path, capsys, digest) -> None:
    seed = census_sample[["sex"]].head(5).assign(planet="Mars")
    seed.to_parquet(tmp_path / "seed.parquet", index=False)
    assert_rejected(["generate", "--model", str(trained_generator.model_dir), "--output", str(tmp_path / "out"),
                     "--seed-data", str(tmp_path / "seed.parquet"), "--tracking-uri", trained_generator.store.uri],
                    capsys, digest, [tmp_path / "seed.parquet"], ["planet"], ["drop those columns"])
    assert not (tmp_path / "out").exists()
    # seed events begin event logs; a flat-table generator refuses them
    assert_rejected(["generate", "--model", str(trained_generator.model_dir), "--output", str(tmp_path / "out"),
                     "--seed-data", str(tmp_path / "seed.parquet"), "--seed-events", str(tmp_path / "seed.parquet"),
                     "--tracking-uri", trained_generator.store.uri],
                    capsys, digest, [tmp_path / "seed.parquet"], ["flat-table generator"], ["--seed-events"])


def test_imputing_a_column_the_generator_does_not_model_is_refused(trained_generator, census_sample, tmp_path,
                                                                     capsys, digest) -> None:
    census_sample.head(20).assign(note=None).to_parquet(tmp_path / "data.parquet", index=False)
    assert_rejected(["impute", "--model", str(trained_generator.model_dir), "--data", str(tmp_path / "data.parquet"),
                     "--columns", "note", "--output", str(tmp_path / "out"), "--tracking-uri",
                     trained_generator.store.uri], capsys, digest, [tmp_path / "data.parquet"], ["note"],
                    ["--columns"])
    assert not (tmp_path / "out").exists()
