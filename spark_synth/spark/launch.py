"""Starting a training's ranks: in the driver (local), as TorchDistributor's barrier tasks, or with
``horovod.spark.run``; then collecting what rank 0 wrote and checking that every rank agrees."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import Any

import torch
from pyspark.sql import SparkSession
from safetensors.torch import load_file

from spark_synth.errors import SynthError
from spark_synth.privacy.plan import PrivateSteps
from spark_synth.training.loop import TrainResult
from spark_synth.training.rank import RESULT_FILE, RankJob, run_rank

BACKENDS = ("local", "torch-distributor", "horovod")


@dataclass
class Trained:
    """What the ranks trained, per phase (``model``, or ``subjects`` and ``events``)."""

    states: dict[str, dict[str, torch.Tensor]]
    results: dict[str, TrainResult]
    private_steps: dict[str, PrivateSteps | None]
    samples_per_second: dict[str, float]  # training throughput over all ranks
    train_rows: int  # rows (subjects) of the first phase
    validation_rows: int
    ranks: list[dict[str, Any]]  # what each rank reported: host, device, threads, its rows, weights digest


def check_backend(spark: SparkSession, backend: str, num_processes: int, use_gpu: bool) -> None:
    """Refusals that need no data: a backend not installed, too few task slots, a GPU the driver lacks."""
    if backend == "horovod":
        try:
            import horovod.spark  # noqa: F401
            import horovod.torch  # noqa: F401
        except ImportError as exc:
            raise SynthError(f"--backend horovod needs Horovod with PyTorch support, which is not importable ({exc}).",
                             "Run `make horovod` (builds Horovod 0.28.1 against this torch), or use "
                             "--backend torch-distributor.") from exc
    if backend == "local" and num_processes != 1:
        raise SynthError(f"--backend local trains in one process (got --num-processes {num_processes}).",
                         "Use --backend torch-distributor (or horovod) for several processes.")
    if backend != "local" and not is_local_master(spark):
        return  # on a cluster the executors' slots and GPUs are checked by Spark when the job starts
    if backend != "local" and num_processes > spark.sparkContext.defaultParallelism:
        raise SynthError(f"--num-processes {num_processes} exceeds the {spark.sparkContext.defaultParallelism} task "
                         "slots of this Spark session.", "Lower --num-processes or give the session more cores.")
    if use_gpu and torch.cuda.device_count() < num_processes:
        raise SynthError(f"--use-gpu with {num_processes} processes needs as many CUDA devices; this machine has "
                         f"{torch.cuda.device_count()}.", "Lower --num-processes, or leave out --use-gpu.")


def is_local_master(spark: SparkSession) -> bool:
    """local[...] runs the ranks beside the driver; local-cluster and real clusters run them on executors."""
    master = spark.conf.get("spark.master", "")
    return master.startswith("local") and not master.startswith("local-cluster")


def threads_per_process(spark: SparkSession, backend: str) -> int | None:
    """On executors a rank gets its task's cores; beside the driver, the host's cores are shared (None)."""
    if backend == "local" or is_local_master(spark):
        return None
    return int(spark.conf.get("spark.task.cpus", "1"))


def launch(spark: SparkSession, job: RankJob, num_processes: int, on_epoch=None) -> Trained:
    """Run ``job`` on ``num_processes`` ranks and return rank 0's weights and results.

    ``on_epoch(phase name)`` returns a phase's per-epoch callback: called live on the local backend; on
    the others every epoch is reported to it after training (workers cannot reach a local MLflow store).
    """
    os.makedirs(job.output_dir, exist_ok=True)
    try:
        if job.backend == "local":
            run_rank(job, on_epoch)
        elif job.backend == "torch-distributor":
            from pyspark.ml.torch.distributor import TorchDistributor

            TorchDistributor(num_processes=num_processes, local_mode=is_local_master(spark),
                             use_gpu=job.use_gpu).run(run_rank, job)
        else:
            import horovod.spark

            horovod.spark.run(run_rank, args=(job,), num_proc=num_processes, use_gloo=True, verbose=0)
    except SynthError:
        raise
    except Exception as exc:
        stated = _rank_error(job.output_dir)
        if stated:
            raise stated from exc
        if job.backend == "local":
            raise
        resume = (f"Rerun the same command: training resumes from the checkpoint in {job.checkpoint_dir}."
                  if job.checkpoint_dir else "Pass --checkpoint-dir DIR so that a rerun resumes where a failure stopped.")
        raise SynthError(f"data-parallel training ({job.backend}, {num_processes} processes) failed on a worker: "
                         f"{type(exc).__name__}: {str(exc)[-500:]}", resume) from exc
    trained = collect(job)
    if on_epoch and job.backend != "local":
        for name, result in trained.results.items():
            callback = on_epoch(name)
            for record in result.history:
                callback(record["epoch"], record)
    return trained


def collect(job: RankJob) -> Trained:
    """Rank 0's weights and result, after checking that every rank reported the same weights."""
    ranks = [_read_json(p) for p in sorted(glob.glob(os.path.join(job.output_dir, "rank-*.json")))]
    digests = {r["digest"] for r in ranks}
    if len(ranks) != len(job.shards) or len(digests) != 1:
        raise RuntimeError(f"ranks disagree after training: {len(ranks)} of {len(job.shards)} reported, weights "
                           f"digests {sorted(digests)}")
    summary = _read_json(os.path.join(job.output_dir, RESULT_FILE))
    phases = summary["phases"]
    return Trained(
        states={p.name: load_file(os.path.join(job.output_dir, p.weights_file)) for p in job.phases},
        results={name: TrainResult(**o["result"]) for name, o in phases.items()},
        private_steps={name: PrivateSteps(**o["private_steps"]) if o["private_steps"] else None
                       for name, o in phases.items()},
        samples_per_second={name: o["samples_per_second"] for name, o in phases.items()},
        train_rows=summary["train_rows"], validation_rows=summary["validation_rows"],
        ranks=sorted(ranks, key=lambda r: r["rank"]))


def _rank_error(output_dir: str) -> SynthError | None:
    for path in sorted(glob.glob(os.path.join(output_dir, "error-*.json"))):
        stated = _read_json(path)
        return SynthError(stated["problem"], stated["fix"])
    return None


def _read_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
