"""DP-SGD training: Poisson-sampled batches, per-sample clipping, Gaussian noise, a planned number of steps.

Unlike :func:`spark_synth.training.loop.fit`, nothing here looks at the data except through the
noisy gradients: no validation loss, early stopping or best-checkpoint choice (each would be an
unaccounted use of the data), a learning-rate schedule fixed in advance, and the losses neither
logged nor shown. The noise is calibrated for the steps planned to fill the time budget, so the
whole budget is spent on training; stopping earlier (out of time) spends less, never more.
"""

from __future__ import annotations

import copy
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, replace

import numpy as np
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from spark_synth.errors import SynthError
from spark_synth.faults import maybe_kill
from spark_synth.model.argn import FlatARGN
from spark_synth.model.sequence import SequenceARGN
from spark_synth.privacy.budget import epsilon_of
from spark_synth.training.clipping import clipped_gradient_sum
from spark_synth.training.data import FlatSamples, Samples, SequenceSamples
from spark_synth.training.loop import Placement, TrainResult, TrainSettings, heads, progress_bar

TIME_SAFETY = 0.9  # plan steps for this share of the time left: the probe is an estimate
PROBE_STEPS, PROBE_WARMUP, PROBE_WARMUP_SECONDS = 5, 3, 3.0


@dataclass
class PrivateSteps:
    """What the accountant needs about one DP-SGD run (Opacus' history entry), and the clipping norm."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    expected_batch: float  # the normaliser of the noisy gradient sum: planned from the noisy count, not measured
    max_grad_norm: float = 1.0

    @property
    def mechanism(self) -> tuple[float, float, int]:
        return (self.noise_multiplier, self.sample_rate, self.steps)


def dp_batch_size(n_samples: int, sequences: bool) -> int:
    """Large Poisson batches: noise shrinks relative to the summed gradient as batches grow."""
    share, low, high = (32, 64, 1024) if sequences else (16, 256, 4096)
    return int(min(high, max(low, 2 ** round(math.log2(max(n_samples / share, 1))))))


def planned_steps(model: torch.nn.Module, batch_size: int, minutes: float, max_epochs: int, sample_rate: float,
                  length_weights: list[float] | None = None, placement: Placement | None = None) -> tuple[int, float]:
    """(steps that fit in ``minutes`` and ``max_epochs``, their expected minutes), timed on random codes of
    the model's shape (never on the data); event models draw lengths from ``length_weights`` (index = length,
    from the DP length histogram). ``batch_size`` is the global batch: across ranks each times its share,
    the gradient exchange included, and all ranks plan the same steps."""
    seconds = seconds_per_step(model, batch_size, length_weights, placement)
    by_time = int(minutes * 60 * TIME_SAFETY / max(seconds, 1e-6))
    by_epochs = int(max_epochs / sample_rate)
    steps = max(1, min(by_time, by_epochs))
    return steps, steps * seconds / 60 / TIME_SAFETY


def seconds_per_step(model: torch.nn.Module, batch_size: int, length_weights: list[float] | None = None,
                     placement: Placement | None = None) -> float:
    place = placement or Placement()
    group = place.collective
    probe = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(group.rank)
    local_batch = max(1, math.ceil(batch_size / group.world_size))
    samples = random_samples(probe, local_batch, generator, length_weights)
    argn = heads(probe)
    before = argn.precedence(argn.sub_order(list(range(len(argn.config.column_slices))))).to(place.device)
    probe.train()
    noise = torch.Generator(device=place.device).manual_seed(0)  # Opacus draws the noise where the weights are
    optimizer = group.dp_optimizer(torch.optim.AdamW(probe.parameters(), lr=1e-3), 1.0, 1.0, batch_size,
                                   noise)  # steps cost their update (and the exchange) too
    timings: list[float] = []
    warm_until = time.monotonic() + PROBE_WARMUP_SECONDS
    # the first steps pay for allocations and waking threads: warm up for a few seconds, then time;
    # ranks decide together when to stop, as every step is a collective
    while group.any(len(timings) < PROBE_WARMUP + PROBE_STEPS or time.monotonic() < warm_until):
        started = time.monotonic()
        clipped_gradient_sum(probe, place.to_device(samples.batch(torch.arange(local_batch), generator)), before, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _synchronize(place.device)
        timings.append(time.monotonic() - started)
    return group.sum_float(float(np.median(timings[-PROBE_STEPS:]))) / group.world_size


def random_samples(model: torch.nn.Module, n: int, generator: torch.Generator,
                   length_weights: list[float] | None = None) -> Samples:
    """Data-free samples with the model's shapes, for timing (event lengths drawn from ``length_weights``,
    uniform when None)."""
    def codes(cardinalities: list[int], *shape: int) -> torch.Tensor:
        if not cardinalities:  # a key-only subject table: no codes
            return torch.zeros(*shape, 0, dtype=torch.long)
        return torch.stack([torch.randint(0, c, shape, generator=generator) for c in cardinalities], dim=-1)

    if isinstance(model, FlatARGN):
        return FlatSamples(codes(model.config.cardinalities, n))
    if isinstance(model, SequenceARGN):
        weights = torch.tensor(length_weights or [0.0] + [1.0] * model.config.max_length, dtype=torch.float64)
        lengths = torch.multinomial(weights.clamp(min=0) + 1e-12, n, replacement=True, generator=generator)
        events = codes(model.config.events.cardinalities, n, max(1, len(weights) - 1)).to(torch.int16)
        return SequenceSamples(codes(model.config.subject_cardinalities, n), events, lengths)
    raise TypeError(f"no random samples for {type(model).__name__}")


def fit_private(model: torch.nn.Module, samples: Samples, settings: TrainSettings, plan: PrivateSteps,
                delta: float, on_epoch: Callable[[int, dict], None] | None = None,
                placement: Placement | None = None) -> tuple[TrainResult, PrivateSteps]:
    """Train in place with DP-SGD for at most ``plan.steps`` steps; returns the result and the steps taken.

    The sampling and the noise use a secret random seed: an attacker who knew them could undo both.
    Across ranks, each rank Poisson-samples its own samples at the global rate (so the union is a
    Poisson sample of all samples at that rate), clips them, and the optimizer sums the clipped
    gradients over ranks with the noise added once: the accountant sees one process's mechanism.
    """
    place = placement or Placement()
    group = place.collective
    start = time.monotonic()
    n = len(samples)
    expected_batch = max(1.0, plan.expected_batch)
    lr = settings.learning_rate or 2e-3 * math.sqrt(expected_batch / 1024)
    secret = torch.Generator().manual_seed(secrets.randbits(63))  # each rank its own: their samples are independent
    noise = torch.Generator(device=place.device).manual_seed(secrets.randbits(63))
    orders = torch.Generator().manual_seed(settings.seed)  # column orders, the same on every rank: not private
    windows = torch.Generator().manual_seed(settings.seed + group.rank)  # event windows: not private
    optimizer = group.dp_optimizer(torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings.weight_decay),
                                   plan.noise_multiplier, plan.max_grad_norm, expected_batch, noise)
    warmup = max(1, plan.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer.original_optimizer, lambda s: _lr_factor(s, warmup, plan.steps))
    argn = heads(model)
    n_columns = len(argn.config.column_slices)
    canonical = argn.precedence(argn.sub_order(list(range(n_columns)))).to(place.device)
    steps_per_epoch = max(1, round(1 / plan.sample_rate))
    history: list[dict] = []
    taken, stopped_by, spent_s, resumed_at = 0, "planned_steps", 0.0, 0
    saved = place.checkpointer.load() if place.checkpointer else None
    if saved:  # the accountant's state is the steps taken under this plan: it goes on from there
        if saved["plan"] != list(astuple(plan)):
            raise SynthError("the checkpoint was planned with other DP-SGD settings than this run.",
                             "Resume with the same settings, or remove the checkpoint directory.")
        model.load_state_dict(saved["model"])
        optimizer.original_optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["scheduler"])
        orders.set_state(saved["orders"])
        taken, history, spent_s = saved["step"], saved["history"], saved["elapsed_s"]
        resumed_at = taken
    deadline = start + settings.max_minutes * 60 - spent_s
    sampler = UniformWithReplacementSampler(num_samples=max(n, 1), sample_rate=plan.sample_rate, generator=secret,
                                            steps=plan.steps - taken)
    bar = progress_bar(settings, place, plan.steps, "step")
    bar.update(taken)
    model.train()
    for indices in sampler:
        if group.any(time.monotonic() > deadline):
            stopped_by = "time_budget"
            break
        maybe_kill(group.rank, taken, place.phase)
        if torch.rand(1, generator=orders).item() < settings.canonical_order_share:
            before = canonical
        else:
            order = torch.randperm(n_columns, generator=orders).tolist()
            before = argn.precedence(argn.sub_order(order)).to(place.device)
        index = torch.as_tensor(indices, dtype=torch.long) if n else torch.zeros(0, dtype=torch.long)
        if len(index):
            clipped_gradient_sum(model, place.to_device(samples.batch(index, windows)), before, plan.max_grad_norm)
        else:  # an empty Poisson batch still takes a (pure noise) step: the accountant counts it
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        taken += 1
        bar.update(1)
        if taken % steps_per_epoch == 0 or taken == plan.steps:
            spent = epsilon_of([(plan.noise_multiplier, plan.sample_rate, taken)], delta)
            record = {"epoch": len(history) + 1, "step": taken, "training_epsilon_so_far": spent,
                      "lr": optimizer.param_groups[0]["lr"], "elapsed_s": time.monotonic() - start + spent_s}
            history.append(record)
            bar.set_postfix(step=taken, epsilon=f"{spent:.2f}", elapsed=f"{record['elapsed_s']:.0f}s")
            if on_epoch:
                on_epoch(record["epoch"], record)
            if place.checkpointer and taken < plan.steps:
                place.checkpointer.save({"model": model.state_dict(), "optimizer": optimizer.original_optimizer.state_dict(),
                                         "scheduler": schedule.state_dict(), "orders": orders.get_state(),
                                         "plan": list(astuple(plan)), "step": taken, "history": history,
                                         "elapsed_s": record["elapsed_s"]})
    bar.close()
    model.eval()
    for p in model.parameters():
        p.grad = None
    done = replace(plan, steps=taken)
    epochs = taken * plan.sample_rate
    result = TrainResult(epochs=max(1, round(epochs)), best_epoch=max(1, round(epochs)), best_val_loss=None,
                         train_loss=math.nan, seconds=time.monotonic() - start + spent_s, stopped_by=stopped_by,
                         history=history, resumed_at=resumed_at)
    return result, done


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10%: fixed in advance, it needs no look at the data."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
