"""The generation mask: a code comes out only if at least k rows (subjects) of the whole table hold it."""

from __future__ import annotations

import torch

from spark_synth.encoding.protect import K_MAX, K_MIN
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig
from spark_synth.training.data import FlatSamples, SequenceSamples, event_rows
from spark_synth.training.loop import TrainSettings, fit
from spark_synth.training.rank import _seen_rows


def digits_model() -> FlatARGN:
    """One number as a tens digit (7 codes) and a units digit (10 codes), beside a 2-code category."""
    torch.manual_seed(0)
    config = ModelConfig(cardinalities=[2, 7, 10], column_slices=[(0, 1), (1, 3)], hidden=16, dropout=0.0)
    return FlatARGN(config).eval()


def planted_codes() -> torch.Tensor:
    """300 rows of tens digits 0..2 and 6, and one planted row whose tens digit (4) nobody else has."""
    g = torch.Generator().manual_seed(1)
    tens = torch.tensor([0, 1, 2, 6])[torch.randint(0, 4, (300,), generator=g)]
    rows = torch.stack([torch.randint(0, 2, (300,), generator=g), tens, torch.randint(0, 10, (300,), generator=g)], 1)
    return torch.cat([rows, torch.tensor([[1, 4, 7]])])


def allowed(model: FlatARGN, j: int) -> list[int]:
    card = model.config.cardinalities[j]
    return torch.nonzero(torch.isfinite(model.code_bias[j, :card])).flatten().tolist()


def test_a_digit_only_one_row_holds_is_never_generated() -> None:
    model = digits_model()
    model.set_seen_codes(planted_codes(), k=5)
    assert allowed(model, 1) == [0, 1, 2, 6]  # the planted 4 is held by one row (the old rule allowed it)
    assert allowed(model, 2) == list(range(10))
    sampled = model.sample(20_000, torch.Generator().manual_seed(0), temperature=3.0)  # flat: every allowed code
    assert set(sampled[:, 1].tolist()) == {0, 1, 2, 6}


def test_k_rows_are_needed_exactly() -> None:
    codes = torch.tensor([[0, 0, 3]] * 20 + [[0, 5, 4]] * 6 + [[1, 3, 4]] * 5)
    for k, tens in ((5, [0, 3, 5]), (6, [0, 5]), (7, [0])):
        model = digits_model()
        model.set_seen_codes(codes, k=k)
        assert allowed(model, 1) == tens, k
        assert allowed(model, 0) == ([0, 1] if k == 5 else [0])  # a column's k holds for all its sub-columns


def test_k_is_per_column_and_secret_by_default() -> None:
    codes = torch.tensor([[0, 0, 3]] * 20 + [[1, 5, 4]] * 6)
    model = digits_model()
    model.set_seen_codes(codes, k=[7, 5])
    assert allowed(model, 0) == [0] and allowed(model, 1) == [0, 5]
    seen = set()
    for _ in range(60):  # k drawn in [K_MIN, K_MAX]: 6 rows pass for k = 5 and 6, never for 7
        model.set_seen_codes(codes)
        seen.add(tuple(allowed(model, 1)))
    assert seen == {(0,), (0, 5)}
    assert K_MIN <= 6 < K_MAX


def test_a_sub_column_without_a_common_code_becomes_constant() -> None:
    codes = torch.tensor([[0, 1, 0]] * 3 + [[1, 2, 1]] * 4 + [[0, 3, 2]] * 2)  # 9 rows: no tens digit reaches k
    model = digits_model()
    model.set_seen_codes(codes, k=5)
    assert allowed(model, 1) == [2]  # the most frequent stays, so the softmax is never empty
    sampled = model.sample(2000, torch.Generator().manual_seed(0))
    assert (sampled[:, 1] == 2).all()


def test_nulls_kept_by_the_statistics_keep_their_codes() -> None:
    """A nullable digits column: the flag 1 and the digits 0 every null row holds both reach k together."""
    torch.manual_seed(0)
    model = FlatARGN(ModelConfig(cardinalities=[2, 3, 10], column_slices=[(0, 3)], hidden=16, dropout=0.0))
    g = torch.Generator().manual_seed(2)
    values = torch.stack([torch.zeros(200, dtype=torch.long), torch.randint(1, 3, (200,), generator=g),
                          torch.randint(1, 10, (200,), generator=g)], 1)
    nulls = torch.tensor([[1, 0, 0]] * K_MAX)
    model.set_seen_codes(torch.cat([values, nulls]), k=K_MAX)
    assert allowed(model, 0) == [0, 1]
    assert 0 in allowed(model, 1) and 0 in allowed(model, 2)


def test_training_still_sees_rare_codes_and_only_the_mask_is_saved() -> None:
    """Training keeps every code the table holds (a masked one would give its row an infinite loss); the
    state holds the generation mask, not the training support nor any count or k."""
    codes = planted_codes()
    model = digits_model()
    model.set_seen_codes(codes, k=5)
    before = model.precedence(model.sub_order([0, 1]))
    assert torch.isfinite(model(codes, before)).all()
    result = fit(model, FlatSamples(codes), FlatSamples(codes[:50]),
                 TrainSettings(max_minutes=1, max_epochs=2, batch_size=64, patience=5, progress=False))
    assert torch.isfinite(torch.tensor(result.best_val_loss))
    state = model.state_dict()
    assert "fit_bias" not in state and torch.isinf(state["code_bias"][1, 4])
    loaded = digits_model()
    loaded.load_state_dict(state)
    assert allowed(loaded, 1) == [0, 1, 2, 6]


def test_event_codes_count_subjects_not_events() -> None:
    """One subject with many events of a code does not make it common: k distinct subjects must hold it."""
    # 6 subjects; subject 0 has code 3 in all its 9 events, subjects 1..5 only code 1; a padding step holds 3 too
    events = torch.zeros(6, 10, 1, dtype=torch.int16)
    events[0, :9, 0] = 3
    events[1:, :4, 0] = 1
    events[1:, 4, 0] = 3  # beyond their length: padding, never counted
    lengths = torch.tensor([9, 4, 4, 4, 4, 4])
    subjects = torch.zeros(6, 1, dtype=torch.long)
    train, val = SequenceSamples(subjects[:4], events[:4], lengths[:4]), SequenceSamples(subjects[4:], events[4:], lengths[4:])
    model = SequenceARGN(SequenceModelConfig(subject_cardinalities=[1], max_length=10,
                                             events=ModelConfig(cardinalities=[5], column_slices=[(0, 1)], hidden=8)))
    argn, rows, owners = _seen_rows(model, train, val)
    assert argn is model.events and torch.equal(rows, event_rows(train, val))
    assert owners.tolist() == [0] * 9 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4
    assert argn.code_counts(rows)[0, :5].tolist() == [0, 20, 0, 9, 0]  # events
    assert argn.code_counts(rows, owners)[0, :5].tolist() == [0, 5, 0, 1, 0]  # subjects
    argn.set_seen_counts(argn.code_counts(rows, owners), k=5)
    assert allowed(argn, 0) == [1]


def test_flat_tables_count_rows() -> None:
    model = digits_model()
    codes = planted_codes()
    argn, rows, owners = _seen_rows(model, FlatSamples(codes[:200]), FlatSamples(codes[200:]))
    assert argn is model and owners is None and torch.equal(rows, codes)
