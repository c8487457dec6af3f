"""One training process of a data-parallel job (or the only one): what every backend runs.

A rank connects to the others, reads its own disjoint encoded shards, builds the model from its
JSON config (every rank starts from rank 0's weights), trains with the shared loops, and writes
what the driver collects to ``output_dir``: every rank a digest of its final weights (the driver
checks they agree), rank 0 the weights and the training result. No Spark here: TorchDistributor
and Horovod call :func:`run_rank` in their worker processes, the local backend in the driver.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
from safetensors.torch import save_file

from spark_synth import dp
from spark_synth.errors import SynthError
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.train.checkpoint import Checkpointer
from spark_synth.train.collective import Collective, HorovodCollective, TorchCollective
from spark_synth.train.data import FlatSamples, load_codes
from spark_synth.train.loop import Placement, TrainSettings, fit
from spark_synth.train.private import PrivateSteps

WEIGHTS_FILE, RESULT_FILE = "weights.safetensors", "result.json"


@dataclass
class PrivateSpec:
    """DP-SGD inputs: the statistics release (its budget and noise) and the batch and epoch limits."""

    release: dp.StatsRelease
    batch_size: int | None
    max_epochs: int


@dataclass
class RankJob:
    """One training, as every rank receives it: picklable, and free of Spark objects."""

    backend: str  # local | torch-distributor | horovod
    shards: list[list[str]]  # encoded Parquet files, one disjoint list per rank
    fields: list[str]
    model_config: dict[str, Any]
    settings: TrainSettings
    output_dir: str
    fingerprint: str
    checkpoint_dir: str | None = None
    use_gpu: bool = False
    mixed_precision: bool = True
    threads: int | None = None  # torch threads per process; None: this host's cores shared by its ranks
    private: PrivateSpec | None = None


def run_rank(job: RankJob, on_epoch=None) -> dict[str, Any]:
    """Train this process's part; returns rank-independent facts (the files hold the rest)."""
    group = connect(job.backend, job.use_gpu)
    try:
        return _train(job, group, on_epoch)
    except SynthError as exc:  # the driver re-raises the problem as it was stated, not as a worker crash
        _write_json(os.path.join(job.output_dir, f"error-{group.rank}.json"), {"problem": exc.problem, "fix": exc.fix})
        raise
    finally:
        group.close()


def connect(backend: str, use_gpu: bool) -> Collective:
    """This process's collective, with its CUDA device chosen before NCCL starts."""
    if use_gpu and not torch.cuda.is_available():
        raise SynthError("--use-gpu was given but this process sees no CUDA device.",
                         "Run on GPU workers (with spark.task.resource.gpu.amount set), or leave out --use-gpu.")
    if backend == "torch-distributor":
        if use_gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        return TorchCollective(_device(use_gpu))
    if backend == "horovod":
        group = HorovodCollective()
        if use_gpu:
            torch.cuda.set_device(group.local_rank)
        return group
    return Collective()


def _device(use_gpu: bool) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if use_gpu else torch.device("cpu")


def _train(job: RankJob, group: Collective, on_epoch) -> dict[str, Any]:
    if len(job.shards) != group.world_size:
        raise SynthError(f"the job was split for {len(job.shards)} processes but {group.world_size} started.",
                         "Check --num-processes against the slots Spark gives the job.")
    torch.set_num_threads(job.threads or max(1, (os.cpu_count() or 1) // group.local_world_size))
    mine = job.shards[group.rank]
    missing = [f for f in mine if not os.path.isfile(f)]
    if missing:
        raise SynthError(f"rank {group.rank} on {os.uname().nodename} cannot see its encoded shard {missing[0]}.",
                         "Set --work-dir to storage every worker mounts (on Databricks a /Volumes/... path).")
    train_codes, val_codes = load_codes("", job.fields, files=mine)
    device = _device(job.use_gpu)
    torch.manual_seed(job.settings.seed)
    model = FlatARGN(ModelConfig(**job.model_config)).to(device)
    checkpointer = Checkpointer(job.checkpoint_dir, job.fingerprint, group.rank == 0) if job.checkpoint_dir else None
    place = Placement(group, device, job.mixed_precision and job.private is None, checkpointer)
    counts = group.all_reduce_sum(torch.tensor([len(train_codes), len(val_codes)], dtype=torch.float64))
    n_train, n_val = int(counts[0]), int(counts[1])
    if job.private is None:  # codes absent from the whole table are never generated
        model.set_seen_counts(group.all_reduce_sum(model.code_counts(torch.cat([train_codes, val_codes]))))
    group.broadcast_parameters(model)
    steps = None
    if job.private:
        spec = job.private
        private = dp.PrivateModel(model, FlatSamples(train_codes), job.settings.max_minutes, spec.max_epochs,
                                  spec.batch_size, total_samples=n_train)
        saved = checkpointer.load() if checkpointer else None
        if saved:  # a resumed run keeps its plan: the noise was calibrated for exactly these steps
            plan = PrivateSteps(*saved["plan"])
        else:
            plan = dp.plan_training(spec.release, [private], job.settings.max_minutes, place)[0]
        result, steps = dp.train_private(private, plan, job.settings, spec.release, on_epoch, place)
    else:
        result = fit(model, FlatSamples(train_codes), FlatSamples(val_codes), job.settings, on_epoch, place)
    seen = steps.steps * steps.sample_rate * n_train if steps else sum(r.get("samples", 0) for r in result.history)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    digest = weights_digest(state)
    _write_json(os.path.join(job.output_dir, f"rank-{group.rank}.json"),
                {"rank": group.rank, "world_size": group.world_size, "digest": digest, "device": str(device),
                 "threads": torch.get_num_threads(), "host": os.uname().nodename,
                 "train_rows": len(train_codes), "validation_rows": len(val_codes)})
    summary = {"train_rows": n_train, "validation_rows": n_val, "world_size": group.world_size, "digest": digest,
               "samples_per_second": seen / max(result.seconds, 1e-9),
               "result": asdict(result), "private_steps": asdict(steps) if steps else None}
    if group.rank == 0:
        save_file(state, os.path.join(job.output_dir, WEIGHTS_FILE))
        _write_json(os.path.join(job.output_dir, RESULT_FILE), summary)
    group.all_reduce_sum(torch.zeros(1))  # nobody leaves before rank 0 has written
    return summary


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """A short hash of the weights: ranks that trained in step hold bit-identical weights."""
    sha = hashlib.sha256()
    for name in sorted(state):
        sha.update(name.encode())
        sha.update(state[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()[:16]


def _write_json(path: str, value: dict[str, Any]) -> None:
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(value, handle, default=float)
    os.replace(partial, path)
