"""Data-parallel training end to end on local[2]: TorchDistributor and Horovod with 2 gloo processes,
DP accounting equal to one process's, and a job with a killed rank resumed from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opacus.accountants import RDPAccountant
from support.commands import assert_rejected, log_argv, write_log

from spark_synth.face import cli
from spark_synth.faults import KILL_ENV
from spark_synth.generators.event_log import LogGenerator
from spark_synth.generators.flat import FlatGenerator
from spark_synth.privacy import plan as dp

DP_ARGS = ["--max-epsilon", "4", "--max-epochs", "2", "--max-minutes", "5"]


@pytest.fixture(scope="module")
def training_only(tmp_path_factory) -> list[str]:
    """``--config`` turning the after-training evaluation off: these tests are about training."""
    path = tmp_path_factory.mktemp("config") / "training-only.yaml"
    path.write_text("quality_rows: 0\n")
    return ["--config", str(path)]


@pytest.fixture(scope="module")
def train(census_parquet: Path, mlflow_store, training_only):
    def run(model_dir: Path, *extra: str) -> int:
        return cli.run(["train", *training_only, "--data", str(census_parquet), "--model-dir", str(model_dir),
                        "--tracking-uri", mlflow_store.uri, "--no-progress", "--seed", "3", *extra])

    return run


def _meta(model_dir: Path) -> dict:
    return json.loads((model_dir / "meta.json").read_text())


NOISY_ROWS = 2987.0  # the released row count, the same in every run below (see same_noisy_count)


def same_noisy_count(patch: pytest.MonkeyPatch) -> None:
    """Every run releases the same noisy row count. DP-SGD is planned from it (sample rate, expected batch,
    epoch cap), so runs with one noise draw must plan alike; with independent draws they would differ."""
    patch.setattr(dp.StatsRelease, "noisy", lambda self, value: NOISY_ROWS)


@pytest.fixture(scope="module")
def dp_runs(train, tmp_path_factory) -> dict[str, dict]:
    """The same DP training (one noise draw for the count) on one process and on 2 processes with each backend."""
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        same_noisy_count(patch)
        for backend in ("local", "torch-distributor", "horovod"):
            model_dir = tmp_path_factory.mktemp("dp") / backend
            processes = "1" if backend == "local" else "2"
            rc = train(model_dir, *DP_ARGS, "--backend", backend, "--num-processes", processes)
            assert rc == 0
            runs[backend] = _meta(model_dir)
    return runs


def test_torch_distributor_trains_two_ranks_that_end_with_equal_weights(train, mlflow_store, tmp_path) -> None:
    model_dir = tmp_path / "model"
    rc = train(model_dir, "--max-epochs", "3", "--backend", "torch-distributor", "--num-processes", "2")
    assert rc == 0
    meta = _meta(model_dir)
    ranks = meta["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and meta["backend"] == "torch-distributor"
    assert len({r["digest"] for r in ranks}) == 1  # bit-identical weights on both ranks
    assert all(r["train_rows"] > 1000 for r in ranks)  # disjoint shards, near-even
    assert sum(r["train_rows"] + r["validation_rows"] for r in ranks) == 3000
    assert meta["epochs"] == 3
    sample = FlatGenerator.load(str(model_dir)).sample(200, seed=1)
    assert len(sample) == 200 and sample["income"].notna().all()
    history = mlflow_store.client().get_metric_history(meta["mlflow_run_id"], "val_loss")
    assert [m.step for m in history] == [1, 2, 3]  # the workers' epochs, logged by the driver


@pytest.mark.parametrize("backend", ["torch-distributor", "horovod"])
def test_two_process_dp_spends_what_one_process_spends(dp_runs: dict[str, dict], backend: str) -> None:
    single, parallel = dp_runs["local"]["privacy"], dp_runs[backend]["privacy"]
    assert parallel["dp_sgd"] == single["dp_sgd"]  # same noise, global sample rate and steps
    assert parallel["epsilon"] == pytest.approx(single["epsilon"], rel=1e-9)
    run = parallel["dp_sgd"][0]
    assert run["steps"] == int(2 / run["sample_rate"])  # the epoch cap bound the plan: all steps taken
    accountant = RDPAccountant()
    text_dates = parallel["statistics"]["text_date_noise_multiplier"]  # census has text columns: tested for dates
    accountant.history = [(parallel["statistics"]["noise_multiplier"], 1.0, 1), (text_dates, 1.0, 1),
                          (run["noise_multiplier"], run["sample_rate"], run["steps"])]
    assert parallel["epsilon"] == pytest.approx(accountant.get_epsilon(parallel["rdp_delta"]), rel=1e-6)
    assert parallel["epsilon"] <= 4.0
    assert len({r["digest"] for r in dp_runs[backend]["ranks"]}) == 1


def test_a_killed_rank_resumes_from_its_checkpoint_with_the_same_epsilon(
        train, tmp_path, monkeypatch, dp_runs, capsys) -> None:
    model_dir, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    args = [*DP_ARGS, "--backend", "torch-distributor", "--num-processes", "2", "--checkpoint-dir", str(checkpoints)]
    same_noisy_count(monkeypatch)  # as in dp_runs, to compare the plans
    monkeypatch.setenv(KILL_ENV, "1:12")  # rank 1 dies at step 12, after the checkpoint of step ~10
    assert train(model_dir, *args) == 2
    assert "resume" in capsys.readouterr().err
    assert (checkpoints / "checkpoint" / "model.pt").is_file() and not model_dir.exists()

    monkeypatch.delenv(KILL_ENV)
    assert train(model_dir, *args) == 0
    meta = _meta(model_dir)
    run = meta["privacy"]["dp_sgd"][0]
    assert 0 < meta["resumed_at"] <= 12 and meta["resumed_at"] % round(1 / run["sample_rate"]) == 0
    assert meta["privacy"]["dp_sgd"] == dp_runs["local"]["privacy"]["dp_sgd"]
    assert meta["privacy"]["epsilon"] == pytest.approx(dp_runs["local"]["privacy"]["epsilon"], rel=1e-9)
    assert meta["privacy"]["statistics"] == dp_runs["local"]["privacy"]["statistics"]
    assert not checkpoints.exists()  # removed after success: it held encoded training rows


def test_an_event_log_trains_on_two_ranks_holding_whole_subjects(baseball_sample, mlflow_store, tmp_path,
                                                                  training_only) -> None:
    """Horovod runs the same rank function (both backends share the collective, tested in test_collective):
    one backend here; the DP event log on two ranks is the killed-and-resumed test below."""
    players, batting = baseball_sample
    players = players.iloc[:500]  # enough subjects for two ranks of several buckets each
    data = write_log(tmp_path / "data", players, batting[batting.players_id.isin(players.id)])
    model_dir = tmp_path / "model"
    argv = log_argv(data, model_dir, mlflow_store, *training_only, "--backend", "torch-distributor",
                    "--num-processes", "2", "--max-epochs", "2", "--max-minutes", "5")
    assert cli.run(argv) == 0
    ranks = _meta(model_dir)["ranks"]
    assert len({r["digest"] for r in ranks}) == 1  # both models bit-identical on both ranks
    assert all(r["train_rows"] > 0 for r in ranks)
    assert sum(r["train_rows"] + r["validation_rows"] for r in ranks) == len(players)  # each subject on one rank
    subjects, events = LogGenerator.load(str(model_dir)).sample(50, seed=2)
    assert len(subjects) == 50 and len(events) > 0


def test_an_event_log_killed_in_its_second_phase_resumes_there(baseball_sample, mlflow_store, tmp_path, monkeypatch,
                                                               capsys, training_only) -> None:
    """The subject model finished before the kill: the rerun keeps it and resumes the sequence model, under
    the DP plan of the first attempt."""
    data = write_log(tmp_path / "data", *baseball_sample)
    model_dir, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    argv = log_argv(data, model_dir, mlflow_store, *training_only, "--backend", "torch-distributor",
                    "--num-processes", "2", "--max-epsilon", "4", "--max-epochs", "2", "--max-minutes", "5",
                    "--checkpoint-dir", str(checkpoints))
    monkeypatch.setenv(KILL_ENV, "0:25:events")  # one epoch of ~21 steps in, past its checkpoint
    assert cli.run(argv) == 2
    assert "resume" in capsys.readouterr().err
    assert (checkpoints / "checkpoint" / "subjects.done.pt").is_file()
    assert (checkpoints / "checkpoint" / "events.pt").is_file()
    monkeypatch.delenv(KILL_ENV)
    assert cli.run(argv) == 0
    meta = _meta(model_dir)
    assert meta["subjects_resumed_at"] == 0 and 0 < meta["events_resumed_at"] <= 25
    subjects, events = meta["privacy"]["dp_sgd"]  # two DP-SGD phases under one noise, composed within the budget
    assert subjects["noise_multiplier"] == events["noise_multiplier"]
    assert events["steps"] == int(2 / events["sample_rate"])  # the whole plan, across both attempts
    assert meta["privacy"]["epsilon"] <= 4.0 and not checkpoints.exists()
    # under DP a rank does not publish how many subjects it holds
    assert not any("train_rows" in r or "validation_rows" in r for r in meta["ranks"])
    assert len({r["digest"] for r in meta["ranks"]}) == 1


@pytest.mark.parametrize("argv,problem,fix", [
    (["--backend", "local", "--num-processes", "2"], "trains in one process", "--backend torch-distributor"),
    (["--backend", "torch-distributor", "--num-processes", "3"], "exceeds the 2 task slots", "Lower --num-processes"),
    (["--backend", "torch-distributor", "--num-processes", "2", "--use-gpu"], "CUDA devices", "leave out --use-gpu"),
])
def test_bad_data_parallel_settings_are_refused_before_training(census_parquet, mlflow_store, tmp_path, capsys,
                                                                digest, argv, problem, fix) -> None:
    model_dir = tmp_path / "model"
    assert_rejected(["train", "--data", str(census_parquet), "--model-dir", str(model_dir),
                     "--tracking-uri", mlflow_store.uri, *argv], capsys, digest, [census_parquet], [problem], [fix])
    assert not model_dir.exists()


def test_a_checkpoint_of_another_training_is_refused(census_parquet, mlflow_store, tmp_path, capsys, digest) -> None:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "prepared.json").write_text(json.dumps({"fingerprint": "other", "stats": {}}))
    assert_rejected(["train", "--data", str(census_parquet), "--model-dir", str(tmp_path / "m"),
                     "--tracking-uri", mlflow_store.uri, "--checkpoint-dir", str(checkpoints)], capsys, digest,
                    [census_parquet, checkpoints], ["other data or settings"], ["another --checkpoint-dir"])
