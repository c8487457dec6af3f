"""The any-order network: masks, the lookup-table sampler, and learning a known distribution."""

from __future__ import annotations

import torch

from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sampling import draw, pick
from spark_synth.training.data import FlatSamples
from spark_synth.training.loop import TrainSettings, fit


def small_model(**kwargs) -> FlatARGN:
    torch.manual_seed(0)
    config = ModelConfig(cardinalities=[3, 5, 4, 7], column_slices=[(0, 1), (1, 3), (3, 4)], hidden=16, dropout=0.0,
                         **kwargs)
    return FlatARGN(config).eval()


def test_sub_columns_of_a_column_stay_together_in_any_order() -> None:
    model = small_model()
    assert model.sub_order([2, 0, 1]).tolist() == [3, 0, 1, 2]
    before = model.precedence(model.sub_order([2, 0, 1]))
    assert before[3].sum() == 0  # the first column sees nothing
    assert before[2].tolist() == [1, 1, 0, 1]  # the 2nd part of column 1 sees all before it


def test_a_head_ignores_sub_columns_that_come_after_it() -> None:
    model = small_model()
    before = model.precedence(model.sub_order([1, 2, 0]))
    codes = torch.stack([torch.randint(0, c, (32,)) for c in model.config.cardinalities], 1)
    changed = codes.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 3  # column 0 is last in this order
    x, y = model._inputs(codes), model._inputs(changed)
    mask = model.input_mask(before)
    for head in (1, 2, 3):  # every head except column 0's own sees identical inputs
        assert torch.equal(x * mask[head], y * mask[head])


def test_lookup_tables_reproduce_the_masked_first_layer() -> None:
    model = small_model()
    order = [2, 0, 1]
    codes = model.sample(50, torch.Generator().manual_seed(0), column_order=order)
    before = model.precedence(model.sub_order(order))
    x = model._inputs(codes)
    tables = model.lookup_tables()
    rows = codes + torch.tensor([0, *model.config.cardinalities[:-1]]).cumsum(0)
    for j in range(4):
        direct = (x * model.input_mask(before)[j]) @ model.w1[j] + model.b1[j]
        via_tables = model.b1[j] + (tables[j][rows] * before[j][None, :, None]).sum(1)
        assert torch.allclose(via_tables, direct, atol=1e-5)


def test_sampling_is_reproducible_and_respects_fixed_codes() -> None:
    model = small_model()
    a = model.sample(100, torch.Generator().manual_seed(5))
    b = model.sample(100, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    fixed = model.sample(100, torch.Generator().manual_seed(1), column_order=[2, 0, 1], fixed={3: torch.full((100,), 6)})
    assert (fixed[:, 3] == 6).all()


def test_unseen_codes_are_never_sampled() -> None:
    model = small_model()
    codes = torch.stack([torch.randint(0, 2, (200,)) for _ in model.config.cardinalities], 1)  # only codes 0, 1
    model.set_seen_codes(codes)
    sampled = model.sample(2000, torch.Generator().manual_seed(0))
    assert sampled.max() <= 1


def test_inverse_cdf_draw_matches_the_probabilities() -> None:
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    logits = torch.log(probs).expand(200_000, 4)
    drawn = draw(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(drawn, minlength=4).float() / len(drawn)
    assert freq[1] == 0
    assert torch.allclose(freq, probs, atol=0.005)


def test_training_learns_a_dependency_between_columns() -> None:
    """y = x (mod 3) in the data: after training, sampling y given x reproduces the rule."""
    torch.manual_seed(0)
    config = ModelConfig(cardinalities=[3, 3], column_slices=[(0, 1), (1, 2)], hidden=32, dropout=0.0)
    model = FlatARGN(config)
    x = torch.randint(0, 3, (3000,))
    codes = torch.stack([x, x], 1)
    model.set_seen_codes(codes)
    result = fit(model, FlatSamples(codes[:2700]), FlatSamples(codes[2700:]), TrainSettings(max_minutes=10, max_epochs=40, batch_size=128, patience=40,
                                                                  progress=False))
    assert result.best_val_loss < 1.2  # ~log(3)=1.10 for x, ~0 for y given x
    fixed = torch.randint(0, 3, (500,))
    out = model.sample(500, torch.Generator().manual_seed(0), column_order=[1, 0], fixed={1: fixed})
    assert (out[:, 0] == fixed).float().mean() > 0.95  # any order: x inferred from y too


def test_pick_never_returns_an_impossible_code_at_the_edges_of_u() -> None:
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0]]).expand(4, 5)
    for value in (0.0, 0.25, 1.0 - 2**-24, 1.0):
        assert set(pick(probs, torch.full((4,), value)).tolist()) <= {1, 3}
