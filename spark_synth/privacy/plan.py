"""Differential privacy's plan for a training: the budget, the statistics release, the DP-SGD noise, the report.

Order of events (every data shape): check the budget (before any other work: the budget and its delta are
settings, never derived from the data); fix the statistics noise; release the noisy row/subject count and
check delta against it; release the noisy statistics; build and size the models from them; time a few steps
on random codes to plan how many DP-SGD steps fit the time budget (the training side,
:func:`spark_synth.training.private.plan_training`); calibrate the DP-SGD noise (:func:`calibrate`) so that
statistics + all planned steps spend exactly the budget; train. Every size the plan uses (sample rates,
expected batches, epoch caps) comes from the noisy count, never from the exact one, so every number that
leaves is noised or data-independent. Pure math: no Spark, no torch, no training loop.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spark_synth.privacy.budget import (
    DEFAULT_DELTA,
    Budget,
    Mechanism,
    check_budget,
    check_delta,
    epsilon_of,
    sgd_noise,
    statistics_noise,
)
from spark_synth.privacy.histograms import noise_std, partitions_per_subject, selection_threshold

if TYPE_CHECKING:
    from spark_synth.config import TrainConfig
    from spark_synth.spark.schema import ColumnPlan

ACCOUNTANT = "Opacus RDP accountant (statistics and DP-SGD composed)"
TEXT_DATE_NOISE = 20.0  # noise multiplier of the text-date test: a small, fixed cost (RDP alpha / 800)


def budget_for(config: TrainConfig) -> Budget:
    """The budget of a DP training, from the settings alone, checked before any work."""
    delta = config.delta if config.delta is not None else DEFAULT_DELTA
    check_budget(config.max_epsilon, delta)
    return Budget(float(config.max_epsilon), float(delta))


@dataclass
class StatsRelease:
    """The noise of the statistics: one Gaussian release of every histogram (and the row count) at once."""

    budget: Budget
    noise_multiplier: float
    partitions: int  # histograms a subject contributes to (at most one partition each)
    counts: int  # plain counts released besides the histograms (rows or subjects)
    fixed: tuple[Mechanism, ...] = ()  # releases before the statistics with noise set in advance (text dates)

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

    def noisy_count(self, exact: int, unit: str) -> int:
        """The released (noisy, rounded) number of rows or subjects, with delta checked against it; the exact
        number is used here and nowhere after."""
        released = max(int(round(self.noisy(exact))), 0)
        check_delta(self.budget.delta, released, unit)
        return released


def training_samples(noisy_total: int, validation_fraction: float) -> int:
    """The planned number of training samples: the noisy count less the validation share. Rates and batches
    are sized from it, so they carry the noise, not the exact size of the training split."""
    return max(1, int(round(noisy_total * (1 - validation_fraction))))


def plan_statistics(budget: Budget, tables: list[list[ColumnPlan]], extra_partitions: int = 0,
                    counts: int = 1, text_date_columns: int = 0) -> StatsRelease:
    """The statistics release of ``tables``, after a text-date test of ``text_date_columns`` columns (if any)."""
    partitions = sum(partitions_per_subject(plans) for plans in tables) + extra_partitions
    fixed = ((TEXT_DATE_NOISE, 1.0, 1),) if text_date_columns else ()
    return StatsRelease(budget, statistics_noise(budget, fixed), partitions, counts, fixed)


def text_date_noise_std(columns: int) -> float:
    """Noise of the text-date test over ``columns`` text columns (all tables of a subject together): two
    margins per column, each moved at most 1 by a row or subject, so the L2 sensitivity is sqrt(2 columns)."""
    return TEXT_DATE_NOISE * math.sqrt(2 * columns)


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


def calibrate(release: StatsRelease, phases: list[tuple[float, int, float]]) -> list[PrivateSteps]:
    """One noise multiplier for all DP-SGD phases ``(sample rate, steps, expected batch)``, trained one after
    the other, that spends what the statistics release leaves of the budget."""
    noise = sgd_noise(release.budget, release.noise_multiplier, [(rate, steps) for rate, steps, _ in phases],
                      release.fixed)
    return [PrivateSteps(noise, rate, steps, float(batch)) for rate, steps, batch in phases]


def privacy_report(release: StatsRelease, runs: list[PrivateSteps]) -> dict[str, Any]:
    """What was spent, for the model metadata, MLflow and the report (JSON-able)."""
    budget = release.budget
    statistics = [(release.noise_multiplier, 1.0, 1), *release.fixed]
    return {
        "epsilon": epsilon_of([*statistics, *[r.mechanism for r in runs]], budget.rdp_delta),
        "delta": budget.delta, "max_epsilon": budget.epsilon,
        "training_epsilon": epsilon_of([r.mechanism for r in runs], budget.rdp_delta),
        "statistics_epsilon": epsilon_of(statistics, budget.rdp_delta),
        "rdp_delta": budget.rdp_delta, "selection_delta": budget.selection_delta,
        "statistics": {"noise_multiplier": release.noise_multiplier, "noise_std": release.noise_std,
                       "l2_sensitivity": math.sqrt(release.sensitivity_squared),
                       "selection_threshold": release.threshold, "histograms_per_subject": release.partitions,
                       "text_date_noise_multiplier": release.fixed[0][0] if release.fixed else None},
        "dp_sgd": [{"noise_multiplier": r.noise_multiplier, "sample_rate": r.sample_rate, "steps": r.steps,
                    "expected_batch": r.expected_batch, "max_grad_norm": r.max_grad_norm} for r in runs],
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
