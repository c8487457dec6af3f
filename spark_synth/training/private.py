"""DP-SGD training: Poisson-sampled batches, per-sample clipping, Gaussian noise, a planned number of steps.

Unlike :func:`spark_synth.training.loop.fit`, nothing here looks at the data except through the
noisy gradients: no validation loss, early stopping or best-checkpoint choice (each would be an
unaccounted use of the data), a learning-rate schedule fixed in advance, and the losses neither
logged nor shown. The noise is calibrated for the steps planned to fill the time budget, so the
whole budget is spent on training; stopping earlier (out of time) spends less, never more.
"""

from __future__ import annotations

import copy
import itertools
import math
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, replace

import numpy as np
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from spark_synth.errors import SynthError
from spark_synth.model.argn import FlatARGN
from spark_synth.model.sequence import SequenceARGN
from spark_synth.privacy.budget import epsilon_of
from spark_synth.privacy.plan import PrivateSteps, StatsRelease, calibrate, dp_batch_size
from spark_synth.training.clipping import clipped_gradient_sum
from spark_synth.training.data import FlatSamples, Samples, SequenceSamples
from spark_synth.training.loop import Placement, Trainer, TrainResult, TrainSettings, heads

TIME_SAFETY = 0.9  # plan steps for this share of the time left: the probe is an estimate
PROBE_STEPS, PROBE_WARMUP, PROBE_WARMUP_SECONDS = 5, 3, 3.0


@dataclass
class PrivateModel:
    """One model to train with DP-SGD: its samples, time budget, expected batch and epoch cap."""

    model: torch.nn.Module
    samples: Samples
    minutes: float | None  # None: the time the models planned before it leave
    max_epochs: int
    planned_samples: int  # across all ranks, from the noisy count (:func:`training_samples`), never the exact one
    batch_size: int | None = None  # None: sized by dp_batch_size
    length_weights: list[float] | None = None  # event models: length distribution for the timing probe

    @property
    def expected_batch(self) -> int:
        size = self.batch_size or dp_batch_size(self.planned_samples, sequences=self.length_weights is not None)
        return max(1, min(size, self.planned_samples))


def plan_training(release: StatsRelease, models: list[PrivateModel], minutes: float,
                  placement: Placement | None = None) -> list[PrivateSteps]:
    """Steps and sample rate per model (trained one after the other within ``minutes``), and one noise
    multiplier for all that spends the rest of the budget. Across ranks, every rank plans the same."""
    phases = []
    for m in models:
        rate = m.expected_batch / m.planned_samples
        budget = minutes if m.minutes is None else min(m.minutes, minutes)
        steps, expected = planned_steps(m.model, m.expected_batch, budget, m.max_epochs, rate, m.length_weights,
                                        placement)
        m.minutes, minutes = budget, max(minutes - expected, 0.05)
        phases.append((rate, steps, m.expected_batch))
    return calibrate(release, phases)


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


class PrivateTrainer(Trainer):
    """DP-SGD in the shared loop: an "epoch" is ~1/sample_rate Poisson batches (the last one ends at the
    planned steps), its record is the epsilon spent so far, and it stops at the planned steps or out of time.

    The sampling and the noise use a secret random seed: an attacker who knew them could undo both.
    Across ranks, each rank Poisson-samples its own samples at the global rate (so the union is a
    Poisson sample of all samples at that rate), clips them, and the optimizer sums the clipped
    gradients over ranks with the noise added once: the accountant sees one process's mechanism.
    """

    unit = "step"
    stopped_by = "planned_steps"

    def __init__(self, model: torch.nn.Module, samples: Samples, settings: TrainSettings, plan: PrivateSteps,
                 delta: float, on_epoch: Callable[[int, dict], None] | None = None,
                 placement: Placement | None = None) -> None:
        super().__init__(model, settings, placement, on_epoch)
        self.samples, self.plan, self.delta = samples, plan, delta
        expected_batch = max(1.0, plan.expected_batch)
        lr = settings.learning_rate or 2e-3 * math.sqrt(expected_batch / 1024)
        self.secret = torch.Generator().manual_seed(secrets.randbits(63))  # each rank its own: independent samples
        noise = torch.Generator(device=self.place.device).manual_seed(secrets.randbits(63))
        self.windows = torch.Generator().manual_seed(settings.seed + self.group.rank)  # event windows: not private
        self.optimizer = self.group.dp_optimizer(
            torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings.weight_decay),
            plan.noise_multiplier, plan.max_grad_norm, expected_batch, noise)
        warmup = max(1, plan.steps // 20)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer.original_optimizer,
                                                          lambda s: _lr_factor(s, warmup, plan.steps))
        self.steps_per_epoch = max(1, round(1 / plan.sample_rate))
        self.sampler: Iterator[list[int]] = iter(())

    def restore(self, saved: dict) -> None:
        """The accountant's state is the steps taken under this plan: it goes on from there."""
        if saved["plan"] != list(astuple(self.plan)):
            raise SynthError("the checkpoint was planned with other DP-SGD settings than this run.",
                             "Resume with the same settings, or remove the checkpoint directory.")
        self.model.load_state_dict(saved["model"])
        self.optimizer.original_optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["scheduler"])
        self.steps_taken = self.resumed_at = saved["step"]

    def epochs(self) -> Iterator[int]:
        # one Poisson sampler for the steps left; the epochs take their batches from it in turn
        self.sampler = iter(UniformWithReplacementSampler(num_samples=max(len(self.samples), 1),
                                                          sample_rate=self.plan.sample_rate, generator=self.secret,
                                                          steps=self.plan.steps - self.steps_taken))
        while self.steps_taken < self.plan.steps:
            yield len(self.history) + 1

    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        """Up to the next record: a multiple of 1/sample_rate steps, or the last planned step."""
        left = min(self.steps_per_epoch - self.steps_taken % self.steps_per_epoch, self.plan.steps - self.steps_taken)
        empty = not len(self.samples)
        return (torch.zeros(0, dtype=torch.long) if empty else torch.as_tensor(indices, dtype=torch.long)
                for indices in itertools.islice(self.sampler, left))

    def step(self, index: torch.Tensor, before: torch.Tensor) -> None:
        model = self.model
        if len(index):
            clipped_gradient_sum(model, self.place.to_device(self.samples.batch(index, self.windows)), before,
                                 self.plan.max_grad_norm)
        else:  # an empty Poisson batch still takes a (pure noise) step: the accountant counts it
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()

    def epoch_record(self, epoch: int) -> dict:
        """Epsilon so far and the scheduled learning rate: never a loss, which would be an unaccounted release."""
        plan = self.plan
        spent = epsilon_of([(plan.noise_multiplier, plan.sample_rate, self.steps_taken)], self.delta)
        return {"epoch": epoch, "step": self.steps_taken, "training_epsilon_so_far": spent,
                "lr": self.optimizer.param_groups[0]["lr"]}

    def postfix(self, record: dict) -> dict:
        return {"step": record["step"], "epsilon": f"{record['training_epsilon_so_far']:.2f}"}

    def stop(self, out_of_time: bool) -> str | None:
        if self.steps_taken >= self.plan.steps:
            return "planned_steps"
        return "time_budget" if out_of_time else None

    def checkpoint(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.original_optimizer.state_dict(),
                "scheduler": self.schedule.state_dict(), "plan": list(astuple(self.plan)), "step": self.steps_taken}

    def finish(self) -> TrainResult:
        self.model.eval()
        for p in self.model.parameters():
            p.grad = None
        epochs = max(1, round(self.steps_taken * self.plan.sample_rate))
        return TrainResult(epochs=epochs, best_epoch=epochs, best_val_loss=None, train_loss=math.nan,
                           seconds=self.elapsed(), stopped_by=self.stopped_by, history=self.history,
                           resumed_at=self.resumed_at)

    def bar_total(self) -> int | None:
        return self.plan.steps

    def bar_position(self) -> int:
        return self.steps_taken


def fit_private(model: torch.nn.Module, samples: Samples, settings: TrainSettings, plan: PrivateSteps,
                delta: float, on_epoch: Callable[[int, dict], None] | None = None,
                placement: Placement | None = None) -> tuple[TrainResult, PrivateSteps]:
    """Train in place with DP-SGD for at most ``plan.steps`` steps; returns the result and the steps taken."""
    trainer = PrivateTrainer(model, samples, settings, plan, delta, on_epoch, placement)
    result = trainer.run()
    return result, replace(plan, steps=trainer.steps_taken)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10%: fixed in advance, it needs no look at the data."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
