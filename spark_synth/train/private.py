"""DP-SGD training: Poisson-sampled batches, per-sample clipping, Gaussian noise, a planned number of steps.

Unlike :func:`spark_synth.train.loop.fit`, nothing here looks at the data except through the
noisy gradients: no validation loss, early stopping or best-checkpoint choice (each would be an
unaccounted use of the data), a learning-rate schedule fixed in advance, and the losses neither
logged nor shown. The noise is calibrated for the steps planned to fill the time budget, so the
whole budget is spent on training; stopping earlier (out of time) spends less, never more.
"""

from __future__ import annotations

import copy
import math
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from opacus.optimizers import DPOptimizerFastGradientClipping
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from tqdm.auto import tqdm

from spark_synth.model.argn import FlatARGN
from spark_synth.model.sequence import SequenceARGN
from spark_synth.privacy.budget import epsilon_of
from spark_synth.train.clipping import clipped_gradient_sum
from spark_synth.train.data import FlatSamples, Samples, SequenceSamples
from spark_synth.train.loop import TrainResult, TrainSettings, heads

TIME_SAFETY = 0.9  # plan steps for this share of the time left: the probe is an estimate
PROBE_STEPS, PROBE_WARMUP, PROBE_WARMUP_SECONDS = 5, 3, 3.0


@dataclass
class PrivateSteps:
    """What the accountant needs about one DP-SGD run (Opacus' history entry), and the clipping norm."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float = 1.0

    @property
    def mechanism(self) -> tuple[float, float, int]:
        return (self.noise_multiplier, self.sample_rate, self.steps)


def dp_batch_size(n_samples: int, sequences: bool) -> int:
    """Large Poisson batches: noise shrinks relative to the summed gradient as batches grow."""
    share, low, high = (32, 64, 1024) if sequences else (16, 256, 4096)
    return int(min(high, max(low, 2 ** round(math.log2(max(n_samples / share, 1))))))


def planned_steps(model: torch.nn.Module, batch_size: int, minutes: float, max_epochs: int, sample_rate: float,
                  length_weights: list[float] | None = None) -> tuple[int, float]:
    """(steps that fit in ``minutes`` and ``max_epochs``, their expected minutes), timed on random codes of
    the model's shape (never on the data); event models draw lengths from ``length_weights`` (index = length,
    from the DP length histogram)."""
    seconds = seconds_per_step(model, batch_size, length_weights)
    by_time = int(minutes * 60 * TIME_SAFETY / max(seconds, 1e-6))
    by_epochs = int(max_epochs / sample_rate)
    steps = max(1, min(by_time, by_epochs))
    return steps, steps * seconds / 60 / TIME_SAFETY


def seconds_per_step(model: torch.nn.Module, batch_size: int, length_weights: list[float] | None = None) -> float:
    probe = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    samples = random_samples(probe, batch_size, generator, length_weights)
    argn = heads(probe)
    before = argn.precedence(argn.sub_order(list(range(len(argn.config.column_slices)))))
    probe.train()
    optimizer = _dp_optimizer(probe, 1e-3, 0.0, 1.0, 1.0, batch_size, generator)  # steps cost their update too
    timings: list[float] = []
    warm_until = time.monotonic() + PROBE_WARMUP_SECONDS
    # the first steps pay for allocations and waking threads: warm up for a few seconds, then time
    while len(timings) < PROBE_WARMUP + PROBE_STEPS or time.monotonic() < warm_until:
        started = time.monotonic()
        clipped_gradient_sum(probe, samples.batch(torch.arange(batch_size), generator), before, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timings.append(time.monotonic() - started)
    return float(np.median(timings[-PROBE_STEPS:]))


def random_samples(model: torch.nn.Module, n: int, generator: torch.Generator,
                   length_weights: list[float] | None = None) -> Samples:
    """Data-free samples with the model's shapes, for timing (event lengths drawn from ``length_weights``,
    uniform when None)."""
    def codes(cardinalities: list[int], *shape: int) -> torch.Tensor:
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
                delta: float, on_epoch: Callable[[int, dict], None] | None = None) -> tuple[TrainResult, PrivateSteps]:
    """Train in place with DP-SGD for at most ``plan.steps`` steps; returns the result and the steps taken.

    The sampling and the noise use a secret random seed: an attacker who knew them could undo both.
    """
    start = time.monotonic()
    deadline = start + settings.max_minutes * 60
    n = len(samples)
    expected_batch = max(1, round(plan.sample_rate * n))
    lr = settings.learning_rate or 2e-3 * math.sqrt(expected_batch / 1024)
    secret = torch.Generator().manual_seed(secrets.randbits(63))
    orders = torch.Generator().manual_seed(settings.seed)  # column orders and windows: not private
    optimizer = _dp_optimizer(model, lr, settings.weight_decay, plan.noise_multiplier, plan.max_grad_norm,
                              expected_batch, secret)
    warmup = max(1, plan.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer.original_optimizer, lambda s: _lr_factor(s, warmup, plan.steps))
    sampler = UniformWithReplacementSampler(num_samples=n, sample_rate=plan.sample_rate, generator=secret,
                                            steps=plan.steps)
    argn = heads(model)
    n_columns = len(argn.config.column_slices)
    canonical = argn.precedence(argn.sub_order(list(range(n_columns))))
    steps_per_epoch = max(1, round(1 / plan.sample_rate))
    interactive = sys.stderr.isatty()
    bar = tqdm(total=plan.steps, disable=not settings.progress, unit="step", dynamic_ncols=True,
               mininterval=0.5 if interactive else 30.0)
    history: list[dict] = []
    taken, stopped_by = 0, "planned_steps"
    model.train()
    for indices in sampler:
        if time.monotonic() > deadline:
            stopped_by = "time_budget"
            break
        if torch.rand(1, generator=orders).item() < settings.canonical_order_share:
            before = canonical
        else:
            before = argn.precedence(argn.sub_order(torch.randperm(n_columns, generator=orders).tolist()))
        index = torch.as_tensor(indices, dtype=torch.long)
        if len(index):
            clipped_gradient_sum(model, samples.batch(index, orders), before, plan.max_grad_norm)
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
                      "lr": optimizer.param_groups[0]["lr"], "elapsed_s": time.monotonic() - start}
            history.append(record)
            bar.set_postfix(step=taken, epsilon=f"{spent:.2f}", elapsed=f"{record['elapsed_s']:.0f}s")
            if on_epoch:
                on_epoch(record["epoch"], record)
    bar.close()
    model.eval()
    for p in model.parameters():
        p.grad = None
    done = PrivateSteps(plan.noise_multiplier, plan.sample_rate, taken, plan.max_grad_norm)
    epochs = taken * plan.sample_rate
    result = TrainResult(epochs=max(1, round(epochs)), best_epoch=max(1, round(epochs)), best_val_loss=None,
                         train_loss=math.nan, seconds=time.monotonic() - start, stopped_by=stopped_by, history=history)
    return result, done


def _dp_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, noise_multiplier: float, max_grad_norm: float,
                  expected_batch: int, generator: torch.Generator) -> DPOptimizerFastGradientClipping:
    """AdamW behind Opacus: ``p.grad`` holds the clipped sum; Opacus adds the noise and averages."""
    return DPOptimizerFastGradientClipping(
        torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay), noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm, expected_batch_size=expected_batch, loss_reduction="mean", generator=generator)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10%: fixed in advance, it needs no look at the data."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
