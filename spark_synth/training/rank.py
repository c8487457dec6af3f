"""One training process of a data-parallel job (or the only one): what every backend runs.

A rank connects to the others, reads its own disjoint encoded shards, builds each model from its
JSON config (every rank starts from rank 0's weights) and trains the job's phases in order with the
shared loops: a flat table's one model, or an event log's subject model then its sequence model.
It writes what the driver collects to ``output_dir``: every rank a digest of its final weights (the
driver checks they agree), rank 0 the weights and the results. No Spark here: TorchDistributor and
Horovod call :func:`run_rank` in their worker processes, the local backend in the driver.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from safetensors.torch import save_file

from spark_synth.encoding.packing import Field
from spark_synth.errors import SynthError
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig
from spark_synth.privacy import plan as dp
from spark_synth.training.checkpoint import Checkpointer
from spark_synth.training.collective import Collective, HorovodCollective, TorchCollective
from spark_synth.training.data import (
    FlatSamples,
    Samples,
    SequenceSamples,
    event_rows,
    load_codes,
    load_sequences,
)
from spark_synth.training.loop import Placement, TrainResult, TrainSettings, fit
from spark_synth.training.private import PrivateModel, fit_private, plan_training

RESULT_FILE = "result.json"
MIN_PHASE_MINUTES = 0.1


@dataclass
class Phase:
    """One model to train: ``model`` (a flat table), or ``subjects`` then ``events`` (an event log)."""

    name: str
    model_config: dict[str, Any]  # ModelConfig, or SequenceModelConfig for ``events``
    time_share: float | None  # at most this share of the time left; None: all of it
    batch_size: int | None  # the global (DP: expected) batch; None: sized to the data
    max_epochs: int
    planned_samples: int | None = None  # DP: training samples across ranks, from the noisy count (dp.training_samples)
    # a sequence model's subjects per length 0..max (protected, or DP-released): where its length head starts,
    # and under DP the lengths its timing probe draws
    length_prior: list[float] | None = None

    @property
    def weights_file(self) -> str:
        return f"weights-{self.name}.safetensors"


@dataclass(frozen=True)
class SequenceWindows:
    """An event log's sequences as the ranks load them: at most ``max_length`` events (protected), trained in
    windows of ``window`` events."""

    max_length: int
    window: int


@dataclass
class RankJob:
    """One training, as every rank receives it: picklable, and free of Spark objects."""

    backend: str  # local | torch-distributor | horovod
    shards: list[dict[str, list[str]]]  # per rank, disjoint encoded Parquet files: {"rows"} or {"subjects", "events"}
    fields: dict[str, list[Field]]  # where each table's codes lie in its shards
    phases: list[Phase]
    settings: TrainSettings  # max_minutes: the whole job's budget
    output_dir: str
    fingerprint: str
    checkpoint_dir: str | None = None
    use_gpu: bool = False
    mixed_precision: bool = True
    threads: int | None = None  # torch threads per process; None: this host's cores shared by its ranks
    release: dp.StatsRelease | None = None  # under DP: the statistics release (budget, noise)
    windows: SequenceWindows | None = None  # event logs: how long sequences are cut for training


def run_rank(job: RankJob, on_epoch=None) -> dict[str, Any]:
    """Train this process's part; returns rank-independent facts (the files hold the rest).

    ``on_epoch(phase name)`` gives the per-epoch callback of a phase (the local backend logs to MLflow live).
    """
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
    started = time.monotonic()
    if len(job.shards) != group.world_size:
        raise SynthError(f"the job was split for {len(job.shards)} processes but {group.world_size} started.",
                         "Check --num-processes against the slots Spark gives the job.")
    torch.set_num_threads(job.threads or max(1, (os.cpu_count() or 1) // group.local_world_size))
    samples = _load(job, job.shards[group.rank], group.rank)
    device = _device(job.use_gpu)
    torch.manual_seed(job.settings.seed)
    models = {p.name: _build(p).to(device) for p in job.phases}
    counts = {name: [int(v) for v in group.all_reduce_sum(torch.tensor([len(t), len(v)], dtype=torch.float64))]
              for name, (t, v) in samples.items()}
    if job.release is None:  # codes fewer than k rows (subjects) of the whole table hold are never generated
        for name, model in models.items():
            argn, rows, owners = _seen_rows(model, *samples[name])
            argn.set_seen_counts(group.all_reduce_sum(argn.code_counts(rows, owners)))  # k: secret, rank 0's wins
    for model in models.values():
        group.broadcast_parameters(model)

    writer = group.rank == 0
    checkpoint = {p.name: Checkpointer(job.checkpoint_dir, job.fingerprint, writer, p.name) for p in job.phases} \
        if job.checkpoint_dir else {}
    plans = _plans(job, models, samples, group, device, checkpoint) if job.release else {}
    outcomes: dict[str, dict[str, Any]] = {}
    spent = 0.0  # minutes the phases before took, resumed ones included
    for phase in job.phases:
        done = checkpoint[phase.name].load_done() if checkpoint else None
        if done:  # finished before a failure: its weights and result stand
            models[phase.name].load_state_dict(done["model"])
            outcomes[phase.name] = done["outcome"]
            spent += done["outcome"]["result"]["seconds"] / 60
            continue
        left = max(job.settings.max_minutes - spent, MIN_PHASE_MINUTES)
        minutes = left * phase.time_share if phase.time_share else left
        settings = replace(job.settings, max_minutes=minutes, max_epochs=phase.max_epochs, batch_size=phase.batch_size)
        place = Placement(group, device, job.mixed_precision and job.release is None, checkpoint.get(phase.name),
                          phase.name)
        callback = on_epoch(phase.name) if on_epoch else None
        model, (train, val) = models[phase.name], samples[phase.name]
        steps = None
        if job.release:
            result, steps = fit_private(model, train, settings, plans[phase.name], job.release.budget.rdp_delta,
                                        callback, place)
        else:
            result = fit(model, train, val, settings, callback, place)
        outcomes[phase.name] = _outcome(result, steps)
        spent += result.seconds / 60
        if checkpoint:
            checkpoint[phase.name].save_done({"model": model.state_dict(), "outcome": outcomes[phase.name]})
    return _report(job, group, device, models, samples, counts, outcomes, time.monotonic() - started)


def _load(job: RankJob, mine: dict[str, list[str]], rank: int) -> dict[str, tuple[Samples, Samples]]:
    """(training, validation) samples per phase, from this rank's files only."""
    for path in (f for files in mine.values() for f in files):
        if not os.path.isfile(path):
            raise SynthError(f"rank {rank} on {os.uname().nodename} cannot see its encoded shard {path}.",
                             "Set --work-dir (or --checkpoint-dir) to storage every worker mounts "
                             "(on Databricks a /Volumes/... path).")
    if job.windows is None:
        train, val = load_codes(job.fields["rows"], mine["rows"])
        return {"model": (FlatSamples(train), FlatSamples(val))}
    subject_train, subject_val = load_codes(job.fields["subjects"], mine["subjects"])
    sequences = load_sequences(mine["subjects"], mine["events"], job.fields["subjects"], job.fields["events"],
                               job.windows.max_length, job.windows.window)
    return {"subjects": (FlatSamples(subject_train), FlatSamples(subject_val)), "events": sequences}


def _build(phase: Phase) -> torch.nn.Module:
    if phase.name == "events":
        model = SequenceARGN(SequenceModelConfig(**phase.model_config))
        if phase.length_prior:
            model.start_lengths_at(phase.length_prior)
        return model
    return FlatARGN(ModelConfig(**phase.model_config))


def _seen_rows(model: torch.nn.Module, train: Samples,
               val: Samples) -> tuple[FlatARGN, torch.Tensor, torch.Tensor | None]:
    """The any-order network whose codes are masked, the code rows it learns from (all splits), and for events
    each row's subject (this rank's index): a code must be held by k subjects, not by k events of one.

    A subject and all its events live on one rank, so per-rank distinct counts sum to the table's.
    """
    if isinstance(model, SequenceARGN):
        assert isinstance(train, SequenceSamples) and isinstance(val, SequenceSamples)
        owners, offset = [], 0
        for part in (train, val):  # the same mask and order as event_rows
            valid = torch.arange(part.event_codes.shape[1])[None, :] < part.lengths[:, None]
            owners.append((torch.arange(len(part))[:, None] + offset).expand_as(valid)[valid])
            offset += len(part)
        return model.events, event_rows(train, val), torch.cat(owners)
    return model, torch.cat([train.codes, val.codes]), None


def _plans(job: RankJob, models: dict[str, torch.nn.Module], samples: dict[str, tuple[Samples, Samples]],
           group: Collective, device: torch.device, checkpoint: dict[str, Checkpointer]) -> dict[str, dp.PrivateSteps]:
    """DP-SGD steps per phase and one noise for all. A resumed job keeps the plan it made: the noise was
    calibrated for exactly those steps, so it ends with the epsilon of an uninterrupted run."""
    first = checkpoint[job.phases[0].name] if checkpoint else None
    saved = first.load_plan() if first else None
    if saved:
        return {name: dp.PrivateSteps(*plan) for name, plan in saved.items()}
    private = []
    for phase in job.phases:
        minutes = None if phase.time_share is None else job.settings.max_minutes * phase.time_share
        private.append(PrivateModel(models[phase.name], samples[phase.name][0], minutes, phase.max_epochs,
                                       _planned(phase), phase.batch_size, _timing_lengths(phase, job.windows)))
    place = Placement(group, device)
    plans = dict(zip([p.name for p in job.phases], plan_training(job.release, private, job.settings.max_minutes,
                                                                     place), strict=True))
    if first:
        first.save_plan({name: list(asdict(plan).values()) for name, plan in plans.items()})
    return plans


def _timing_lengths(phase: Phase, windows: SequenceWindows | None) -> list[float] | None:
    """The lengths the DP timing probe draws for a sequence model: its length distribution (uniform when
    unknown), lengths beyond a window counted as one window, since longer sequences train in windows."""
    if phase.name != "events" or windows is None:
        return None
    weights = phase.length_prior or [0.0] + [1.0] * windows.max_length
    window = min(len(weights) - 1, windows.window)
    return weights[:window] + [sum(weights[window:])]


def _planned(phase: Phase) -> int:
    if phase.planned_samples is None:
        raise ValueError(f"phase {phase.name} trains under DP without a planned (noisy) sample count")
    return phase.planned_samples


def _outcome(result: TrainResult, steps: dp.PrivateSteps | None) -> dict[str, Any]:
    """Under DP the throughput counts planned samples (steps x expected batch): the exact ones are data."""
    seen = steps.steps * steps.expected_batch if steps else sum(r.get("samples", 0) for r in result.history)
    return {"result": asdict(result), "private_steps": asdict(steps) if steps else None,
            "samples_per_second": seen / max(result.seconds, 1e-9)}


def _report(job: RankJob, group: Collective, device: torch.device, models: dict[str, torch.nn.Module],
            samples: dict[str, tuple[Samples, Samples]], counts: dict[str, list[int]],
            outcomes: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Every rank: its digest and what it held; rank 0: the weights and the results. Then a last barrier."""
    states = {name: {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()} for name, m in models.items()}
    digest = weights_digest({f"{name}.{k}": v for name, state in states.items() for k, v in state.items()})
    first = job.phases[0].name
    held = {} if job.release else {"train_rows": len(samples[first][0]), "validation_rows": len(samples[first][1])}
    _write_json(os.path.join(job.output_dir, f"rank-{group.rank}.json"),  # becomes the generator's meta["ranks"]
                {"rank": group.rank, "world_size": group.world_size, "digest": digest, "device": str(device),
                 "threads": torch.get_num_threads(), "host": os.uname().nodename, **held})
    summary = {"train_rows": counts[first][0], "validation_rows": counts[first][1], "world_size": group.world_size,
               "digest": digest, "seconds": seconds, "phases": outcomes}
    if group.rank == 0:
        for phase in job.phases:
            save_file(states[phase.name], os.path.join(job.output_dir, phase.weights_file))
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
