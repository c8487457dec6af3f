"""Differential privacy in the training pipelines: the budget, the statistics release, DP-SGD, the report.

Order of events (flat tables and event logs alike): count the rows/subjects and check the budget
(before any other work); fix the statistics noise; release the noisy statistics; build the models
from them; time a few steps on random codes to plan how many DP-SGD steps fit the time budget;
calibrate the DP-SGD noise so that statistics + all planned steps spend exactly the budget; train.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from spark_synth.privacy.budget import (
    Budget,
    check_budget,
    default_delta,
    epsilon_of,
    sgd_noise,
    statistics_noise,
)
from spark_synth.privacy.histograms import noise_std, selection_threshold
from spark_synth.train.data import Samples
from spark_synth.train.loop import Placement, TrainSettings
from spark_synth.train.private import PrivateSteps, dp_batch_size, fit_private, planned_steps

if TYPE_CHECKING:  # training ranks import this module: it stays free of Spark
    from spark_synth.config import TrainConfig
    from spark_synth.schema import ColumnPlan

ACCOUNTANT = "Opacus RDP accountant (statistics and DP-SGD composed)"


def budget_for(config: TrainConfig, n_subjects: int, unit: str) -> Budget:
    """The budget of a DP training, checked against the number of rows/subjects before any other work."""
    delta = config.delta if config.delta is not None else default_delta(n_subjects)
    check_budget(config.max_epsilon, delta, n_subjects, unit)
    return Budget(float(config.max_epsilon), float(delta))


@dataclass
class StatsRelease:
    """The noise of the statistics: one Gaussian release of every histogram (and the row count) at once."""

    budget: Budget
    noise_multiplier: float
    partitions: int  # histograms a subject contributes to (at most one partition each)
    counts: int  # plain counts released besides the histograms (rows or subjects)

    @property
    def sensitivity_squared(self) -> int:
        return self.partitions + self.counts

    @property
    def noise_std(self) -> float:
        return noise_std(self.noise_multiplier, self.sensitivity_squared)

    @property
    def threshold(self) -> float:
        return selection_threshold(self.noise_std, self.budget.selection_delta, self.partitions)

    def noisy(self, value: float) -> float:
        """``value`` plus this release's Gaussian noise, from a secret seed."""
        return float(value + np.random.default_rng(secrets.randbits(128)).normal(0.0, self.noise_std))


def plan_statistics(budget: Budget, tables: list[list[ColumnPlan]], extra_partitions: int = 0,
                    counts: int = 1) -> StatsRelease:
    from spark_synth.private_stats import partitions_per_subject

    partitions = sum(partitions_per_subject(plans) for plans in tables) + extra_partitions
    return StatsRelease(budget, statistics_noise(budget), partitions, counts)


@dataclass
class PrivateModel:
    """One model to train with DP-SGD: its samples, time budget, expected batch and epoch cap."""

    model: torch.nn.Module
    samples: Samples
    minutes: float | None  # None: the time the models planned before it leave
    max_epochs: int
    batch_size: int | None = None  # None: sized by dp_batch_size
    length_weights: list[float] | None = None  # event models: length distribution for the timing probe
    total_samples: int | None = None  # across all ranks; None: this process holds them all

    @property
    def n_samples(self) -> int:
        return self.total_samples if self.total_samples is not None else len(self.samples)

    @property
    def expected_batch(self) -> int:
        size = self.batch_size or dp_batch_size(self.n_samples, sequences=self.length_weights is not None)
        return max(1, min(size, self.n_samples))


def plan_training(release: StatsRelease, models: list[PrivateModel], minutes: float,
                  placement: Placement | None = None) -> list[PrivateSteps]:
    """Steps and sample rate per model (trained one after the other within ``minutes``), and one noise
    multiplier for all that spends the rest of the budget. Across ranks, every rank plans the same."""
    phases = []
    for m in models:
        rate = m.expected_batch / m.n_samples
        budget = minutes if m.minutes is None else min(m.minutes, minutes)
        steps, expected = planned_steps(m.model, m.expected_batch, budget, m.max_epochs, rate, m.length_weights,
                                        placement)
        m.minutes, minutes = budget, max(minutes - expected, 0.05)
        phases.append((rate, steps))
    noise = sgd_noise(release.budget, release.noise_multiplier, phases)
    return [PrivateSteps(noise, rate, steps) for rate, steps in phases]


def train_private(m: PrivateModel, plan: PrivateSteps, settings: TrainSettings, release: StatsRelease, on_epoch=None,
                  placement: Placement | None = None):
    return fit_private(m.model, m.samples, settings, plan, release.budget.rdp_delta, on_epoch, placement)


def privacy_report(release: StatsRelease, runs: list[PrivateSteps]) -> dict[str, Any]:
    """What was spent, for the model metadata, MLflow and the report (JSON-able)."""
    budget = release.budget
    statistics = (release.noise_multiplier, 1.0, 1)
    return {
        "epsilon": epsilon_of([statistics, *[r.mechanism for r in runs]], budget.rdp_delta),
        "delta": budget.delta, "max_epsilon": budget.epsilon,
        "training_epsilon": epsilon_of([r.mechanism for r in runs], budget.rdp_delta),
        "statistics_epsilon": epsilon_of([statistics], budget.rdp_delta),
        "rdp_delta": budget.rdp_delta, "selection_delta": budget.selection_delta,
        "statistics": {"noise_multiplier": release.noise_multiplier, "noise_std": release.noise_std,
                       "l2_sensitivity": math.sqrt(release.sensitivity_squared),
                       "selection_threshold": release.threshold, "histograms_per_subject": release.partitions},
        "dp_sgd": [{"noise_multiplier": r.noise_multiplier, "sample_rate": r.sample_rate, "steps": r.steps,
                    "max_grad_norm": r.max_grad_norm} for r in runs],
        "accountant": ACCOUNTANT,
    }


def privacy_metrics(report: dict[str, Any], prefixes: list[str]) -> dict[str, float]:
    metrics = {"epsilon": report["epsilon"], "delta": report["delta"], "training_epsilon": report["training_epsilon"],
               "statistics_noise_std": report["statistics"]["noise_std"]}
    for prefix, run in zip(prefixes, report["dp_sgd"], strict=True):
        metrics |= {f"{prefix}dp_noise_multiplier": run["noise_multiplier"], f"{prefix}dp_sample_rate": run["sample_rate"],
                    f"{prefix}dp_steps": float(run["steps"])}
    return metrics


def format_privacy(report: dict[str, Any]) -> str:
    runs = "; ".join(f"noise {r['noise_multiplier']:.2f}, rate {r['sample_rate']:.4f}, {r['steps']} steps"
                     for r in report["dp_sgd"])
    return (f"privacy: epsilon {report['epsilon']:.3f} of {report['max_epsilon']:g} spent (statistics + training), "
            f"delta {report['delta']:.2g}; DP-SGD {runs}; statistics noise std {report['statistics']['noise_std']:.1f}")
