"""Under DP nothing exact leaves: trainings on neighbouring tables publish the same artifacts.

Two trainings run on tables that differ by one row (flat) or one subject with its events (event log).
The noise is coupled between them: each released count is replaced by a value that depends on the
partition it counts and not on how many rows hold it (beyond being frequent; the coupling argument of a DP proof: for every
noise draw of one run there is one of the other that releases the same values). Everything a generator
publishes must then be identical in both runs — meta.json, stats.json, model.json, log.json, the MLflow
params, metrics and tags, and the console — except the weights (DP-SGD's noisy output) and wall-clock
timings. An exact count anywhere (a rank's rows, a delta or a sample rate computed from the true size)
shows up as a difference, and is also looked for by value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import functions as F
from support.commands import log_argv, write_log

from spark_synth.face import cli
from spark_synth.privacy import plan as dp
from spark_synth.spark import private_analyze as private_stats

COUPLED_COUNT = 2718.0  # the released row/subject count of both runs
DP_SETTINGS = ["--max-epsilon", "4", "--max-epochs", "2", "--max-minutes", "30", "--seed", "5"]  # the epoch cap binds, not time
# wall-clock figures and per-run identifiers: they differ between any two runs, neighbours or not
RUN_IDS = re.compile(r"\b(m-)?[0-9a-f]{32}\b")  # MLflow run and logged-model ids in the console
TIMING = re.compile(r"(seconds|elapsed_s|samples_per_second|mlflow_run_id|digest|^mlflow\.)")


@pytest.fixture
def coupled_noise(monkeypatch):
    """Released values that depend on what is counted, never on the count; fixed secret seeds (the random
    choice of a subject's partition included), so both runs draw alike."""
    def released(count, noise_std):  # held by 20+ rows (in both tables: the added row is typical): released
        partition = F.abs(F.xxhash64("i", "f", "s", "d", "isnull")) % 1000
        return F.when(count >= 20, F.lit(10_000.0) + partition.cast("double")).otherwise(F.lit(-1.0))

    monkeypatch.setattr(private_stats, "released_count", released)
    monkeypatch.setattr(dp.StatsRelease, "noisy", lambda self, value: COUPLED_COUNT)
    monkeypatch.setattr(private_stats.secrets, "randbits", lambda bits: 0x5EED)


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every scalar of a JSON document by its path; lists keep their positions."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}/{i}").items()}
    return {path: value}


def _published(model_dir: Path, store, console: str) -> dict[str, Any]:
    """What a training publishes, as path -> value: the generator's JSON files, the MLflow run, the console."""
    out: dict[str, Any] = {}
    for file in sorted(model_dir.rglob("*.json")):
        out |= _leaves(json.loads(file.read_text()), f"{file.relative_to(model_dir)}")
    meta = json.loads((model_dir / "meta.json").read_text())
    run = store.client().get_run(meta["mlflow_run_id"])
    out |= _leaves({"params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags}, "mlflow")
    history = store.client().get_metric_history(meta["mlflow_run_id"], "training_epsilon_so_far") or \
        store.client().get_metric_history(meta["mlflow_run_id"], "events_training_epsilon_so_far")
    out |= _leaves([m.value for m in history], "mlflow/history")
    lines = [RUN_IDS.sub("<id>", line) for line in console.splitlines()]
    out |= {f"console/{i}": line for i, line in enumerate(lines)}
    return {k: v for k, v in out.items() if not TIMING.search(k.rsplit("/", 1)[-1]) and "weights" not in k}


def _numbers(published: dict[str, Any]) -> set[float]:
    found = set()
    for value in published.values():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            found.add(float(value))
        elif isinstance(value, str):
            found |= {float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*\.?\d*(?:e-?\d+)?", value)}
    return found


def _assert_neighbours_publish_the_same(runs: list[dict[str, Any]], exact: list[int]) -> None:
    first, second = runs
    assert sorted(first) == sorted(second), "the artifacts differ in structure"
    differing = {k: (first[k], second[k]) for k in first if first[k] != second[k]}
    assert not differing, f"published values that depend on the exact data: {differing}"
    leaked = {n for n in exact for x in _numbers(first) if x in (n, 0.1 / n, 1 / n)}
    assert not leaked, f"exact counts published: {leaked}"


def _train_both(tables: dict[str, Any], train, store, capsys) -> list[dict[str, Any]]:
    """``train(table)`` for each neighbour in turn, on the same paths (so settings are equal, inputs aside)."""
    runs = []
    for table in tables.values():
        capsys.readouterr()
        model_dir = train(table)
        runs.append(_published(model_dir, store, capsys.readouterr().out))
    return runs


@pytest.mark.parametrize("backend, processes", [("local", "1"), ("torch-distributor", "2")])
def test_neighbouring_flat_tables_publish_the_same_artifacts(coupled_noise, backend, processes, census_sample,
                                                             tmp_path, mlflow_store, capsys) -> None:
    """One row added (a copy of a row, so that every released partition exists in both)."""
    base = census_sample.iloc[:1500]
    tables = {"without": base, "with": pd.concat([base, base.iloc[[7]]], ignore_index=True)}
    data, model_dir = tmp_path / "data.parquet", tmp_path / "generator"

    def train(table: pd.DataFrame) -> Path:
        table.to_parquet(data, index=False)
        assert cli.run(["train", "--data", str(data), "--model-dir", str(model_dir), "--tracking-uri",
                        mlflow_store.uri, "--no-progress", "--backend", backend, "--num-processes", processes,
                        *DP_SETTINGS]) == 0
        return model_dir

    runs = _train_both(tables, train, mlflow_store, capsys)
    assert sum(k.startswith("meta.json/ranks/") and k.endswith("/rank") for k in runs[0]) == int(processes)
    _assert_neighbours_publish_the_same(runs, [len(base), len(base) + 1])


def test_neighbouring_event_logs_publish_the_same_artifacts(coupled_noise, baseball_sample, tmp_path, mlflow_store,
                                                            capsys) -> None:
    """One subject added with all its events (a copy under a new key), trained on two ranks.

    One backend is enough here: the event-log analysis is the same whatever the backend, and what a
    one-process launch publishes is checked on the flat table above.
    """
    backend, processes = "torch-distributor", "2"
    players, batting = baseball_sample
    players = players.iloc[:800]
    batting = batting[batting.players_id.isin(players.id)]
    copied = players.iloc[[3]].assign(id="zz-copy01")
    copied_events = batting[batting.players_id == players.id.iloc[3]].assign(players_id="zz-copy01")
    logs = {"without": (players, batting),
            "with": (pd.concat([players, copied]), pd.concat([batting, copied_events]))}
    model_dir = tmp_path / "generator"

    def train(log: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
        data = write_log(tmp_path / "log", *log)
        assert cli.run(log_argv(data, model_dir, mlflow_store, "--backend", backend, "--num-processes", processes,
                                *DP_SETTINGS)) == 0
        return model_dir

    runs = _train_both(logs, train, mlflow_store, capsys)
    assert sum(k.startswith("meta.json/ranks/") and k.endswith("/rank") for k in runs[0]) == int(processes)
    _assert_neighbours_publish_the_same(runs, [len(players), len(players) + 1, len(batting),
                                               len(batting) + len(copied_events)])
