"""Event logs without Spark: the order column's first value + gaps, the sequence model, windows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import torch

from spark_synth.encoding.order import gap_type, restore, split
from spark_synth.model.argn import ModelConfig
from spark_synth.model.sequence import EventPrefix, SequenceARGN, SequenceModelConfig
from spark_synth.training.data import SequenceSamples
from spark_synth.training.loop import TrainSettings, fit


def test_gap_types_follow_the_order_column():
    assert gap_type("date") == "int"
    assert gap_type("timestamp") == "double"
    assert gap_type("bigint") == "bigint"
    assert gap_type("double") == "double"
    assert gap_type("string") is None


def test_restore_adds_gaps_within_each_subject():
    first = pa.array([1990, None, None, 2001, None], pa.int64())
    gap = pa.array([None, 1, 3, None, 0], pa.int64())
    starts = np.array([True, False, False, True, False])
    assert restore(first, gap, starts, "bigint", 0.0).to_pylist() == [1990, 1991, 1994, 2001, 2001]


def test_restore_dates_and_timestamps():
    first = pa.array([dt.date(2020, 1, 30), None], pa.date32())
    days = pa.array([None, 3], pa.int32())
    starts = np.array([True, False])
    assert restore(first, days, starts, "date", 0.0).to_pylist() == [dt.date(2020, 1, 30), dt.date(2020, 2, 2)]
    stamp = pa.array([dt.datetime(2020, 1, 1, 23, 0), None], pa.timestamp("us"))
    seconds = pa.array([None, 7200.0])
    out = restore(stamp, seconds, starts, "timestamp_ntz", 0.0).to_pylist()
    assert out == [dt.datetime(2020, 1, 1, 23, 0), dt.datetime(2020, 1, 2, 1, 0)]


def test_restore_never_goes_backwards_and_fills_a_missing_first_value():
    first = pa.array([None, None], pa.int64())
    gap = pa.array([None, -5], pa.int64())  # a negative gap cannot come from sorted data: clipped to 0
    assert restore(first, gap, np.array([True, False]), "bigint", 1900.0).to_pylist() == [1900, 1900]


def test_split_is_the_inverse_of_restore():
    """A seed's ordered events become (first value, gaps) exactly as training derives them, and back."""
    starts = np.array([True, False, False, True, False])
    cases = [
        (pa.array([1990, 1991, 1994, 2001, 2001], pa.int64()), "bigint"),
        (pa.array([dt.date(2020, 1, 30), dt.date(2020, 2, 2), dt.date(2021, 1, 1), dt.date(1999, 5, 5),
                   dt.date(1999, 5, 9)], pa.date32()), "date"),
        (pa.array([dt.datetime(2020, 1, 1, 23, 0), dt.datetime(2020, 1, 2, 1, 0, 30), dt.datetime(2020, 1, 3),
                   dt.datetime(2001, 1, 1), dt.datetime(2001, 1, 1, 0, 0, 1)], pa.timestamp("us")), "timestamp_ntz"),
    ]
    for values, kind in cases:
        first, gap = split(values, starts, kind)
        assert first.null_count == 3 and gap.is_null().to_pylist() == starts.tolist()
        assert restore(first, gap, starts, kind, 0.0).to_pylist() == values.to_pylist()
    _, gap = split(cases[1][0], starts, "date")
    assert gap.type == pa.int32() and gap.to_pylist() == [None, 3, 334, None, 4]


def test_given_first_events_are_kept_and_lengths_cover_them():
    """A subject's given first events keep their codes; its length is drawn at least as long; others are free."""
    model = _model(max_length=5)
    tables = model.events.lookup_tables()
    n = 300
    given = torch.tensor([3, 0, 1] * (n // 3))
    codes = torch.zeros(n, 5, 2, dtype=torch.long)
    codes[:, :, 0] = torch.tensor([2, 1, 2, 1, 2])
    prefix = EventPrefix(codes, given, sub_columns=[0], column_order=[0, 1])
    subjects = torch.zeros(n, 1, dtype=torch.long)
    out, owner, step = model.sample(subjects, torch.Generator().manual_seed(0), tables, prefix=prefix)
    lengths = torch.bincount(owner, minlength=n)
    assert bool((lengths >= given).all())
    kept = step < given[owner]
    assert bool((out[kept, 0] == codes[owner[kept], step[kept], 0]).all())
    assert len(set(out[~kept, 0].tolist())) > 1  # the continuation and unseeded subjects are drawn
    plain = model.sample(subjects, torch.Generator().manual_seed(0), tables)
    assert not torch.equal(plain[1], owner)  # the given events changed the subjects' draws


def _toy(n_subjects: int = 64, max_length: int = 6, seed: int = 0) -> SequenceSamples:
    """Subjects of two kinds: kind 0 has short sequences of code 1, kind 1 long ones of code 2."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 2, n_subjects)
    lengths = np.where(kinds == 0, 1, max_length - 1)
    events = np.zeros((n_subjects, max_length, 2), dtype=np.int16)
    for i, (kind, length) in enumerate(zip(kinds, lengths, strict=True)):
        events[i, :length, 0] = 1 + kind
        events[i, :length, 1] = np.arange(length) % 3
    return SequenceSamples(torch.tensor(kinds[:, None], dtype=torch.long), torch.from_numpy(events),
                           torch.tensor(lengths, dtype=torch.long), window=4)


def _model(max_length: int = 6) -> SequenceARGN:
    torch.manual_seed(0)
    events = ModelConfig(cardinalities=[3, 3], column_slices=[(0, 1), (1, 2)], hidden=32, dropout=0.0)
    return SequenceARGN(SequenceModelConfig(subject_cardinalities=[2], events=events, max_length=max_length,
                                            history=16, state=8, dropout=0.0))


def test_windows_cover_long_sequences_and_start_at_zero_for_evaluation():
    samples = _toy()
    index = torch.arange(len(samples))
    subjects, events, lengths, starts = samples.batch(index, torch.Generator().manual_seed(1))
    assert events.shape[1] == 4 and subjects.shape == (len(samples), 1)
    assert bool((starts <= (lengths - 4).clamp(min=0)).all()) and bool((starts > 0).any())
    expected = samples.event_codes[index, starts].long()
    assert torch.equal(events[:, 0], expected)
    assert int(samples.batch(index)[3].abs().sum()) == 0


def test_sequence_model_learns_lengths_and_codes_from_context():
    samples = _toy()
    model = _model()
    result = fit(model, samples, samples.head(16), TrainSettings(max_minutes=1, max_epochs=60, batch_size=16,
                                                                learning_rate=1e-2, patience=60, progress=False))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 2
    tables = model.events.lookup_tables()
    kinds = torch.tensor([[0]] * 50 + [[1]] * 50)
    codes, owner, step = model.sample(kinds, torch.Generator().manual_seed(3), tables)
    lengths = torch.bincount(owner, minlength=100)
    assert float((lengths[:50] == 1).float().mean()) > 0.8 and float((lengths[50:] == 5).float().mean()) > 0.8
    assert float((codes[owner < 50, 0] == 1).float().mean()) > 0.8
    # rows come subject by subject, steps in order
    assert bool((owner[1:] >= owner[:-1]).all())
    same_subject = owner[1:] == owner[:-1]
    assert bool((step[1:][same_subject] == step[:-1][same_subject] + 1).all())


def test_length_head_starts_at_a_given_distribution_and_still_learns_from_context():
    """Started at the data's length distribution, every context draws it before any step; training then
    learns how each context departs from it (kind 0 short, kind 1 long)."""
    samples, model = _toy(), _model()
    model.start_lengths_at([0.0, 32.0, 0.0, 0.0, 0.0, 32.0, 0.0])
    model.eval()
    tables = model.events.lookup_tables()
    kinds = torch.tensor([[0]] * 1000 + [[1]] * 1000)
    _, owner, _ = model.sample(kinds, torch.Generator().manual_seed(3), tables)
    lengths = torch.bincount(owner, minlength=2000)
    for side in (lengths[:1000], lengths[1000:]):
        shares = torch.bincount(side, minlength=7).float() / 1000
        assert abs(float(shares[1]) - 0.5) < 0.05 and abs(float(shares[5]) - 0.5) < 0.05
    fit(model, samples, samples.head(16), TrainSettings(max_minutes=1, max_epochs=60, batch_size=16,
                                                       learning_rate=1e-2, patience=60, progress=False))
    _, owner, _ = model.sample(kinds[::10], torch.Generator().manual_seed(4), tables)
    lengths = torch.bincount(owner, minlength=200)
    assert float((lengths[:100] == 1).float().mean()) > 0.8 and float((lengths[100:] == 5).float().mean()) > 0.8


def test_sampling_never_exceeds_the_protected_length_and_honours_pins():
    model = _model(max_length=3)
    tables = model.events.lookup_tables()
    subjects = torch.zeros(200, 1, dtype=torch.long)
    codes, owner, step = model.sample(subjects, torch.Generator().manual_seed(0), tables,
                                      fixed_first={1: 2}, fixed_later={1: 0})
    assert int(torch.bincount(owner).max()) <= 3
    assert bool((codes[step == 0, 1] == 2).all()) and bool((codes[step > 0, 1] == 0).all())
    again = model.sample(subjects, torch.Generator().manual_seed(0), tables, fixed_first={1: 2}, fixed_later={1: 0})
    assert torch.equal(again[0], codes) and torch.equal(again[1], owner)
