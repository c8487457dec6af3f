"""One (epsilon, delta) budget for everything a generator learns from the data, and its accounting.

Every noisy release is a Gaussian mechanism, so all of them compose in Renyi DP with Opacus'
RDP analysis: the statistics are one Gaussian release (sampling rate 1, one step) of all the
histograms at once, and DP-SGD is the subsampled Gaussian mechanism (rate q, T steps). The
ledger is Opacus' accountant history, ``[(noise multiplier, sample rate, steps), ...]``.

delta defaults to ``DEFAULT_DELTA``, a constant: a default derived from the number of rows would
publish that number (delta = 0.1/N gives N back). Whether delta is below 1/N is checked against the
noisy count, after it is released (:func:`check_delta`).

How the budget is split:
- delta: ``SELECTION_DELTA_SHARE`` of it covers partition selection (a category or a bin that
  only one subject holds being released anyway); the rest converts RDP to (epsilon, delta).
- epsilon: DP-SGD alone gets ``1 - stats_share`` of it; the statistics get the noise that makes
  the composition of both spend exactly the whole epsilon. Composed in RDP, the statistics cost
  far less than their stand-alone epsilon, so they can be released with much less noise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from spark_synth.errors import SynthError

ORDERS = RDPAccountant.DEFAULT_ALPHAS
DEFAULT_DELTA = 1e-6  # fixed, so that the delta itself says nothing about the data; below 1/N up to 1M rows/subjects
SELECTION_DELTA_SHARE = 0.1
STATS_SHARE = 0.1
MAX_NOISE_MULTIPLIER = 50.0  # beyond this DP-SGD learns nothing useful: the budget is too small
NOMINAL_TRAINING = (0.0, 0.05, 500)  # (unused, sample rate, steps): the plan the statistics noise is sized for
Mechanism = tuple[float, float, int]  # (noise multiplier, sample rate, steps), as in Opacus' history


@dataclass(frozen=True)
class Budget:
    epsilon: float
    delta: float
    stats_share: float = STATS_SHARE

    @property
    def selection_delta(self) -> float:
        return self.delta * SELECTION_DELTA_SHARE

    @property
    def rdp_delta(self) -> float:
        return self.delta - self.selection_delta


def check_budget(epsilon: float, delta: float) -> None:
    """Refuse budgets that cannot give a meaningful guarantee, before any work (nothing here looks at data)."""
    if not epsilon > 0 or not math.isfinite(epsilon):
        raise SynthError(f"--max-epsilon must be a positive number (got {epsilon}).",
                         "Pass a positive budget such as --max-epsilon 2 (smaller is more private).")
    if not 0 < delta < 1:
        raise SynthError(f"--delta must lie strictly between 0 and 1 (got {delta}).",
                         "Pass a small delta such as --delta 1e-6, or leave it out for the default.")


def check_delta(delta: float, noisy_count: float, unit: str = "rows") -> None:
    """Refuse a delta that is not below 1 / the number of rows/subjects, judged on the *noisy* count: the
    check and its message are post-processing of a DP release, so a refusal reveals nothing exact."""
    count = max(noisy_count, 1.0)
    if delta * count >= 1:
        suggestion = 10.0 ** math.floor(math.log10(0.1 / count))
        raise SynthError(f"--delta {delta:g} is not below 1 / number of {unit} (about {count:,.0f}, a noisy count: "
                         f"1/{count:,.0f} = {1 / count:.3g}); a delta that large allows releasing a whole record.",
                         f"Pass --delta below {1 / count:.3g}, e.g. --delta {suggestion:g}.")


def rdp(mechanisms: list[Mechanism]) -> np.ndarray:
    """The RDP curve (over ``ORDERS``) of the composition of the mechanisms."""
    total = np.zeros(len(ORDERS))
    for z, q, steps in mechanisms:
        if steps > 0:
            total += np.asarray(compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=ORDERS))
    return total


def epsilon_of(mechanisms: list[Mechanism], delta: float) -> float:
    """Epsilon of the composed mechanisms at ``delta`` (the RDP part of the budget's delta)."""
    if not any(steps for _, _, steps in mechanisms):
        return 0.0
    return _epsilon_of_curve(rdp(mechanisms), delta)


def statistics_noise(budget: Budget, fixed: tuple[Mechanism, ...] = ()) -> float:
    """Noise multiplier of the statistics release, fixed before the models exist.

    Chosen so that, composed with a nominal DP-SGD run (``NOMINAL_TRAINING``), DP-SGD alone would get
    ``1 - stats_share`` of epsilon; the real training is then calibrated to the exact remainder
    (:func:`sgd_noise`), so the split is close to, not exactly, ``stats_share``. ``fixed``: releases whose
    noise is set in advance (the text-date test), composed with the rest.
    """
    target_sgd = (1 - budget.stats_share) * budget.epsilon
    nominal = [NOMINAL_TRAINING]
    z_sgd = _bisect(lambda z: epsilon_of([(z, *nominal[0][1:])], budget.rdp_delta), target_sgd)
    sgd_curve = rdp([(z_sgd, *nominal[0][1:]), *fixed])
    orders = np.asarray(ORDERS)

    def total(stats_noise: float) -> float:
        curve = sgd_curve + orders / (2 * stats_noise**2)  # a Gaussian release without subsampling
        return _epsilon_of_curve(curve, budget.rdp_delta)

    return _bisect(total, budget.epsilon)


def sgd_noise(budget: Budget, stats_noise: float, phases: list[tuple[float, int]],
              fixed: tuple[Mechanism, ...] = ()) -> float:
    """The DP-SGD noise multiplier that makes statistics (and the ``fixed`` releases) + all planned training
    (``phases``: sample rate and steps of each model) spend exactly the budget's epsilon."""
    spent = [(stats_noise, 1.0, 1), *fixed]
    noise = _bisect(lambda z: epsilon_of([*spent, *[(z, q, t) for q, t in phases]], budget.rdp_delta),
                    budget.epsilon)
    if noise > MAX_NOISE_MULTIPLIER:
        raise SynthError(f"an epsilon of {budget.epsilon} is too small to train on: DP-SGD would need a noise "
                         f"multiplier of {noise:.0f}, and the model would learn nothing but noise.",
                         "Raise --max-epsilon (1 to 10 is usual), or train on more rows/subjects.")
    return noise


def _bisect(epsilon_at, target: float, low: float = 1e-2, high: float = 1e4) -> float:
    """The smallest noise multiplier whose epsilon is at most ``target`` (epsilon falls as noise grows)."""
    if epsilon_at(high) > target:
        return high * 10  # unreachable: reported as "too small" by the caller
    for _ in range(60):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if epsilon_at(mid) > target else (low, mid)
        if high / low < 1 + 1e-4:
            break
    return high


def _epsilon_of_curve(curve: np.ndarray, delta: float) -> float:
    with warnings.catch_warnings():  # "optimal order is the largest alpha": a slightly loose bound, still valid
        warnings.simplefilter("ignore", UserWarning)
        return float(get_privacy_spent(orders=ORDERS, rdp=curve, delta=delta)[0])
