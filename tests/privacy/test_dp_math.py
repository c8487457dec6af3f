"""DP math without Spark: accounting against Opacus, calibration, histogram bins, per-sample clipping."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from torch.func import functional_call, grad, vmap

from spark_synth.config import TrainConfig
from spark_synth.errors import SynthError
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig
from spark_synth.privacy import histograms as H
from spark_synth.privacy.budget import (
    DEFAULT_DELTA,
    Budget,
    check_budget,
    check_delta,
    epsilon_of,
    sgd_noise,
    statistics_noise,
)
from spark_synth.privacy.plan import PrivateSteps
from spark_synth.training.clipping import (
    _vmap_clipped_sum,
    clipped_gradient_sum,
    flat_per_sample_norms,
    sequence_per_sample_norms,
)
from spark_synth.training.data import FlatSamples, SequenceSamples
from spark_synth.training.loop import TrainSettings
from spark_synth.training.private import fit_private


# ---------------------------------------------------------------------------------------------- accounting
@pytest.mark.parametrize("z, q, steps", [(1.1, 0.01, 1000), (3.6, 0.06, 600), (0.8, 0.2, 50)])
def test_training_epsilon_is_opacus_rdp_accountant(z, q, steps) -> None:
    accountant = RDPAccountant()
    accountant.history = [(z, q, steps)]
    assert epsilon_of([(z, q, steps)], 1e-5) == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)


def test_noise_is_calibrated_to_spend_the_whole_budget_and_no_more() -> None:
    budget = Budget(2.0, 1e-5)
    stats = statistics_noise(budget)
    for phases in ([(0.06, 600)], [(0.02, 300), (0.03, 400)]):
        z = sgd_noise(budget, stats, phases)
        total = epsilon_of([(stats, 1.0, 1), *[(z, q, t) for q, t in phases]], budget.rdp_delta)
        assert 0.995 * budget.epsilon <= total <= budget.epsilon
    # more steps need more noise for the same budget
    assert sgd_noise(budget, stats, [(0.06, 1200)]) > sgd_noise(budget, stats, [(0.06, 600)])


def test_a_fixed_release_is_composed_into_the_budget() -> None:
    """The text-date test's release (noise set in advance) is paid for: the rest is calibrated around it."""
    budget, fixed = Budget(2.0, 1e-6), ((20.0, 1.0, 1),)
    stats = statistics_noise(budget, fixed)
    assert stats > statistics_noise(budget)  # less left for the statistics ...
    z = sgd_noise(budget, stats, [(0.05, 400)], fixed)
    total = epsilon_of([(stats, 1.0, 1), *fixed, (z, 0.05, 400)], budget.rdp_delta)
    assert 0.995 * budget.epsilon <= total <= budget.epsilon  # ... and the whole stays within the budget


def test_statistics_cost_about_their_share_under_the_nominal_plan() -> None:
    budget = Budget(2.0, 1e-5)
    stats = statistics_noise(budget)
    nominal = sgd_noise(budget, stats, [(0.05, 500)])
    alone = epsilon_of([(nominal, 0.05, 500)], budget.rdp_delta)
    assert alone == pytest.approx((1 - budget.stats_share) * budget.epsilon, rel=0.01)


def test_a_budget_too_small_to_learn_is_refused() -> None:
    with pytest.raises(SynthError, match="too small"):
        sgd_noise(Budget(0.01, 1e-5), statistics_noise(Budget(0.01, 1e-5)), [(0.5, 5000)])


@pytest.mark.parametrize("epsilon, delta, words", [
    (0.0, 1e-5, "positive"), (-1.0, 1e-5, "positive"), (2.0, 0.0, "between 0 and 1"), (2.0, 1.5, "between 0 and 1")])
def test_invalid_budgets_are_refused(epsilon, delta, words) -> None:
    with pytest.raises(SynthError, match=words):
        check_budget(epsilon, delta)


def test_delta_is_checked_against_the_noisy_count_and_the_refusal_names_only_it() -> None:
    check_delta(1e-5, 99_000.4, "rows")  # below 1/N: accepted
    with pytest.raises(SynthError, match="1 / number of subjects") as refused:
        check_delta(1e-3, 1234.6, "subjects")
    assert "about 1,235, a noisy count" in refused.value.problem and "--delta 1e-05" in refused.value.fix


def test_the_default_delta_is_a_constant() -> None:
    """A default derived from the row count (0.1/N) would publish N: the default is data-independent."""
    from spark_synth.privacy.plan import budget_for

    assert budget_for(TrainConfig(data="x", model_dir="m", max_epsilon=2)).delta == DEFAULT_DELTA
    assert budget_for(TrainConfig(data="x", model_dir="m", max_epsilon=2, delta=1e-7)).delta == 1e-7


def test_config_refuses_invalid_privacy_settings() -> None:
    with pytest.raises(ValueError, match="max_epsilon must be a positive"):
        TrainConfig(data="x", model_dir="m", max_epsilon=0)
    with pytest.raises(ValueError, match="give max_epsilon too"):
        TrainConfig(data="x", model_dir="m", delta=1e-6)
    assert TrainConfig(data="x", model_dir="m", max_epsilon=2).private


# ---------------------------------------------------------------------------------------------- histograms
def test_every_value_lies_in_its_log_bin() -> None:
    values = np.array([0.0, 1.0, -1.0, 17, 90, 2**10, -3.3, 1e-12, 123456.789, -9e15, 5e300])
    for x, code in zip(values, H.bin_code(values), strict=True):
        low, high = H.bin_range(int(code))
        assert low <= x <= high or (abs(x) < 2.0**-30 and x > 0 and high == 2.0 ** (-30 + 1 / 8))
    assert H.bin_code(np.array([0.0]))[0] == 0


def test_selection_threshold_bounds_the_release_of_a_single_subjects_partition() -> None:
    sigma, delta, partitions = 20.0, 1e-6, 25
    tau = H.selection_threshold(sigma, delta, partitions)
    released = 1 - NormalDist(1.0, sigma).cdf(tau)  # one subject's partition has true count 1
    assert partitions * released == pytest.approx(delta, rel=1e-6)


def test_quantile_edges_are_sorted_within_bounds_and_follow_the_mass() -> None:
    bins = {int(H.bin_code(np.array([v]))[0]): 1000.0 for v in (10, 100, 1000)}
    edges = H.quantile_edges(bins, 9.0, 1100.0, 10)
    assert edges == sorted(edges) and edges[0] == 9.0 and edges[-1] == 1100.0
    assert sum(e < 50 for e in edges) >= 3 and sum(e > 500 for e in edges) >= 3


def test_a_number_is_discrete_when_exact_values_hold_the_mass() -> None:
    assert H.is_discrete({0.0: 900.0, 5.0: 60.0}, {0: 900.0, 10012: 60.0, 10100: 30.0}, 100)
    assert not H.is_discrete({0.0: 300.0}, {0: 300.0, 10100: 700.0}, 100)


# ---------------------------------------------------------------------------------------------- clipping
def _flat_model() -> FlatARGN:
    torch.manual_seed(0)
    model = FlatARGN(ModelConfig(cardinalities=[5, 9, 3, 12], column_slices=[(0, 1), (1, 3), (3, 4)], hidden=16,
                                 dropout=0.0))
    with torch.no_grad():  # non-trivial LayerNorm parameters, so their per-sample gradients matter
        model.norm.weight.normal_()
        model.norm.bias.normal_()
    return model


def _per_sample_grads(model, before, *batch, **kwargs) -> dict[str, torch.Tensor]:
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(p, *sample):
        return functional_call(model, (p, buffers), (*[s[None] for s in sample], before), kwargs).sum()

    return vmap(grad(loss), in_dims=(None, *[0] * len(batch)))(params, *batch)


def test_ghost_norms_equal_exact_per_sample_gradient_norms() -> None:
    model = _flat_model()
    codes = torch.stack([torch.randint(0, c, (9,)) for c in model.config.cardinalities], 1)
    before = model.precedence(model.sub_order([2, 0, 1]))
    norms, _ = flat_per_sample_norms(model, codes, before)
    exact = _per_sample_grads(model, before, codes)
    expected = torch.sqrt(sum(g.reshape(9, -1).pow(2).sum(1) for g in exact.values()))
    torch.testing.assert_close(norms, expected, rtol=1e-4, atol=1e-5)


def _clipped_sum_reference(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    n = next(iter(grads.values())).shape[0]
    norms = torch.sqrt(sum(g.reshape(n, -1).pow(2).sum(1) for g in grads.values()))
    factors = (max_norm / (norms * (1 + 1e-5) + 1e-6)).clamp(max=1.0)
    return {k: torch.tensordot(factors, g, dims=1) for k, g in grads.items()}


def test_flat_clipped_sum_is_the_sum_of_clipped_per_sample_gradients() -> None:
    model = _flat_model()
    codes = torch.stack([torch.randint(0, c, (9,)) for c in model.config.cardinalities], 1)
    before = model.precedence(model.sub_order([0, 1, 2]))
    expected = _clipped_sum_reference(_per_sample_grads(model, before, codes), max_norm=0.5)
    clipped_gradient_sum(model, (codes,), before, 0.5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6)


SUBJECT_SHAPES = pytest.mark.parametrize("subject_cards", [(4, 3), ()], ids=["attributes", "key-only"])


def _sequence_model_and_batch(subject_cards: tuple[int, ...] = (4, 3)):
    torch.manual_seed(1)
    events = ModelConfig(cardinalities=[6, 4, 5], column_slices=[(0, 1), (1, 2), (2, 3)], hidden=16, dropout=0.0)
    model = SequenceARGN(SequenceModelConfig(subject_cardinalities=list(subject_cards), events=events, max_length=5,
                                             history=8, state=8, dropout=0.0))
    subjects = torch.stack([torch.randint(0, c, (6,)) for c in subject_cards], 1) if subject_cards else \
        torch.zeros(6, 0, dtype=torch.long)  # a key-only subject table: no subject codes
    codes = torch.stack([torch.randint(0, c, (6, 5)) for c in (6, 4, 5)], 2).to(torch.int16)
    lengths = torch.tensor([1, 5, 3, 0, 2, 4])
    samples = SequenceSamples(subjects, codes, lengths, window=5)
    return model, samples.batch(torch.arange(6))


def test_dense_sequence_loss_equals_the_sparse_one() -> None:
    model, batch = _sequence_model_and_batch()
    before = model.events.precedence(model.events.sub_order([1, 0, 2]))
    model.eval()
    torch.testing.assert_close(model(*batch, before, dense=True), model(*batch, before))


@SUBJECT_SHAPES
def test_sequence_ghost_norms_equal_per_sample_autograd_norms(subject_cards) -> None:
    model, batch = _sequence_model_and_batch(subject_cards)
    before = model.events.precedence(model.events.sub_order([0, 2, 1]))
    model.train()  # dropout is 0 in this model, as the pipeline sets it under DP
    norms, _ = sequence_per_sample_norms(model, batch, before)
    expected = []
    for i in range(len(batch[0])):
        model.zero_grad(set_to_none=True)
        model(*[b[i:i + 1] for b in batch], before).sum().backward()
        expected.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None)))
    torch.testing.assert_close(norms, torch.stack(expected), rtol=1e-4, atol=1e-5)


@SUBJECT_SHAPES
@pytest.mark.parametrize("clip", [clipped_gradient_sum, _vmap_clipped_sum], ids=["ghost", "vmap"])
def test_sequence_clipped_sum_is_the_sum_of_clipped_per_sample_gradients(clip, subject_cards) -> None:
    model, batch = _sequence_model_and_batch(subject_cards)
    before = model.events.precedence(model.events.sub_order([0, 1, 2]))
    model.train()  # dropout is 0: per-sample gradients are deterministic
    expected = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for i in range(len(batch[0])):  # one sample at a time, plain autograd
        model.zero_grad(set_to_none=True)
        model(*[b[i:i + 1] for b in batch], before).sum().backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
        factor = min(1.0, 0.3 / (float(norm) * (1 + 1e-5) + 1e-6))
        for k, p in model.named_parameters():
            if p.grad is not None:
                expected[k] += factor * p.grad
    clip(model, batch, before, 0.3)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------- training
def test_private_training_takes_the_planned_steps_and_reports_them() -> None:
    model = _flat_model()
    codes = torch.stack([torch.randint(0, c, (400,)) for c in model.config.cardinalities], 1)
    before_weights = [p.detach().clone() for p in model.parameters()]
    plan = PrivateSteps(noise_multiplier=1.0, sample_rate=0.1, steps=25, expected_batch=40.0)
    result, done = fit_private(model, FlatSamples(codes), TrainSettings(max_minutes=5, progress=False), plan, 1e-5)
    assert done.steps == 25 and result.stopped_by == "planned_steps" and result.best_val_loss is None
    assert result.history[-1]["training_epsilon_so_far"] == pytest.approx(epsilon_of([(1.0, 0.1, 25)], 1e-5))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before_weights, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())
    assert math.isfinite(sum(float(p.detach().sum()) for p in model.parameters()))


def test_training_plan_spends_the_whole_budget_and_shares_the_time() -> None:
    from spark_synth.privacy.plan import StatsRelease, privacy_report
    from spark_synth.training.private import PrivateModel, plan_training

    budget = Budget(3.0, 1e-6)
    release = StatsRelease(budget, statistics_noise(budget), partitions=8, counts=1)
    codes = torch.stack([torch.randint(0, c, (2000,)) for c in (5, 9, 3, 12)], 1)
    # the planned (noisy) sample count sizes the rate, not the samples held: 2,000 held, 2,010 planned
    capped = PrivateModel(_flat_model(), FlatSamples(codes), minutes=0.5, max_epochs=2, planned_samples=2010,
                          batch_size=100)
    rest = PrivateModel(_flat_model(), FlatSamples(codes), minutes=None, max_epochs=1000, planned_samples=2010,
                        batch_size=100)
    plans = plan_training(release, [capped, rest], minutes=2.0)
    assert plans[0].steps == 40 and plans[0].sample_rate == pytest.approx(100 / 2010)  # 2 epochs of ~20 steps
    assert plans[0].expected_batch == 100.0
    assert capped.minutes == 0.5 and 1.0 < rest.minutes < 2.0  # the second model gets what the first leaves
    assert plans[0].noise_multiplier == plans[1].noise_multiplier
    report = privacy_report(release, plans)
    assert 0.995 * 3.0 <= report["epsilon"] <= 3.0 and report["training_epsilon"] < report["epsilon"]


def _norms_of_each_loss(model: torch.nn.Module, losses: torch.Tensor) -> torch.Tensor:
    """Per-sample gradient norms by one backward pass per loss, through the same graph (same dropout)."""
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None)))
    return torch.stack(norms)


def test_ghost_norms_are_exact_under_dropout() -> None:
    """Dropout draws one mask per pass: the norms must be those of the pass the clipped sum uses."""
    flat = FlatARGN(ModelConfig(cardinalities=[5, 9, 3], column_slices=[(0, 1), (1, 2), (2, 3)], hidden=16,
                                dropout=0.5))
    flat.train()
    codes = torch.stack([torch.randint(0, c, (7,)) for c in (5, 9, 3)], 1)
    norms, losses = flat_per_sample_norms(flat, codes, flat.precedence(flat.sub_order([1, 0, 2])))
    torch.testing.assert_close(norms, _norms_of_each_loss(flat, losses), rtol=1e-4, atol=1e-5)

    model, batch = _sequence_model_and_batch()
    model.events.dropout.p = 0.5  # the heads may drop out; the state network is deterministic under DP
    model.train()
    norms, losses = sequence_per_sample_norms(model, batch, model.events.precedence(model.events.sub_order([2, 1, 0])))
    torch.testing.assert_close(norms, _norms_of_each_loss(model, losses), rtol=1e-4, atol=1e-5)
