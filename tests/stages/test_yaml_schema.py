"""A schema of tables given in YAML (``tables:``) trains and generates an event log end to end, with per-table
column settings; the schema is what MLflow records (sources by name, keys, settings: no data)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from spark_synth.face import cli


def test_a_yaml_schema_trains_and_generates_a_linked_ordered_log(baseball_sample, mlflow_store, tmp_path) -> None:
    players, batting = baseball_sample
    players = players.head(300)[["id", "bats", "throws", "weight"]]
    batting = batting[batting.players_id.isin(players.id)][["players_id", "year", "team", "G", "HR"]]
    players.to_parquet(tmp_path / "players.parquet", index=False)
    batting.to_parquet(tmp_path / "batting.parquet", index=False)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "quality_rows": 0, "experiment": "tables",
        "columns": {"G": {"encoding": "digits"}},  # shared: whichever table holds G
        "tables": [
            {"name": "players", "source": str(tmp_path / "players.parquet"), "primary_key": "id",
             "columns": {"weight": {"exclude": True}}},
            {"name": "batting", "source": str(tmp_path / "batting.parquet"), "order_by": "year",
             "foreign_keys": [{"column": "players_id", "references": "players", "context": True}]},
        ]}))
    generator = tmp_path / "generator"
    assert cli.run(["train", "--config", str(config), "--model-dir", str(generator), "--tracking-uri",
                    mlflow_store.uri, "--no-progress", "--max-minutes", "0.2"]) == 0
    output = tmp_path / "synthetic"
    assert cli.run(["generate", "--model", str(generator), "--subjects", "200", "--output", str(output)]) == 0

    subjects, events = pd.read_parquet(output / "subjects"), pd.read_parquet(output / "events")
    assert list(subjects.columns) == ["id", "bats", "throws"]  # weight excluded in its table's settings
    assert len(subjects) == 200 and subjects.id.is_unique
    assert set(events.players_id) <= set(subjects.id)  # no orphans
    assert (events.groupby("players_id").year.diff().dropna() >= 0).all()  # ordered within each subject

    run = mlflow.MlflowClient(mlflow_store.uri).search_runs(
        [mlflow.get_experiment_by_name("tables").experiment_id])[0]
    recorded = json.loads(run.data.params["tables"])
    assert [(t["name"], t["primary_key"], t["order_by"]) for t in recorded] == [
        ("players", "id", None), ("batting", None, "year")]
    assert recorded[1]["foreign_keys"] == [{"column": "players_id", "references": "players", "context": True}]
    assert recorded[0]["source"] == str(Path(tmp_path / "players.parquet"))
    assert json.loads(run.data.params["columns"]) == {"G": {"encoding": "digits", "exclude": False}}
