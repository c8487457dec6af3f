"""Device-aware sampling, checked on the CPU: the explicit device path draws exactly what the default path
draws, the device branch of ``pick`` changes nothing, and larger sub-batches give valid, repeatable output."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from support.tiny_generators import tiny_generator, tiny_log_generator

import spark_synth.model.sampling as sampling
from spark_synth.errors import SynthError
from spark_synth.generators.controls import Controls, plan
from spark_synth.generators.event_log import EVENT_BATCH
from spark_synth.generators.flat import DEVICE_SUB_BATCH, SUB_BATCH
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig


def _flat(context_dim: int = 0) -> FlatARGN:
    torch.manual_seed(0)
    config = ModelConfig(cardinalities=[3, 5, 4, 7, 2], column_slices=[(0, 1), (1, 3), (3, 4), (4, 5)], hidden=16,
                         dropout=0.0, context_dim=context_dim)
    model = FlatARGN(config).eval()
    with torch.no_grad():  # strong weights: every column depends on the others
        for p in model.parameters():
            p.mul_(3)
    return model


def _sequence() -> SequenceARGN:
    torch.manual_seed(0)
    events = ModelConfig(cardinalities=[3, 3], column_slices=[(0, 1), (1, 2)], hidden=32, dropout=0.0)
    return SequenceARGN(SequenceModelConfig(subject_cardinalities=[2], events=events, max_length=5, history=16,
                                            state=8, dropout=0.0)).eval()


def test_pick_fallback_is_the_same_with_and_without_the_device_sync() -> None:
    torch.manual_seed(1)
    probs = torch.rand(500, 6) * (torch.rand(500, 6) > 0.4)
    probs[:, 2] += 1e-3  # every row has a possible code
    probs[:3] = torch.tensor([[0.5, 0.5, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0], [0.2, 0.3, 0.5, 0, 0, 0]])
    uniform = torch.rand(500)
    uniform[:3] = 1.0  # past the last possible code: the fallback applies
    checked, unconditional = sampling.pick(probs, uniform, sync_free=False), sampling.pick(probs, uniform, sync_free=True)
    assert torch.equal(checked, unconditional)
    assert checked[:3].tolist() == [0, 1, 2]
    assert bool((probs.gather(1, checked[:, None]) > 0).all())


def test_the_device_branch_draws_the_same_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _flat()
    default = model.sample(3000, torch.Generator().manual_seed(4), column_order=[2, 0, 1, 3], temperature=1.5,
                           blind={3}, forbidden={4: [1]})
    monkeypatch.setattr(sampling, "pick", functools.partial(sampling.pick, sync_free=True))
    device_branch = model.sample(3000, torch.Generator().manual_seed(4), column_order=[2, 0, 1, 3], temperature=1.5,
                                 blind={3}, forbidden={4: [1]})
    assert torch.equal(default, device_branch)


def test_an_explicit_cpu_device_gives_the_default_codes() -> None:
    model, moved = _flat(context_dim=4), _flat(context_dim=4).to("cpu")
    context = torch.randn(700, 4, generator=torch.Generator().manual_seed(2))
    fixed = {3: torch.full((700,), 2, dtype=torch.int32)}
    a = model.sample(700, torch.Generator().manual_seed(3), [2, 0, 1, 3], fixed, context=context, top_p=0.9)
    b = moved.sample(700, torch.Generator(device="cpu").manual_seed(3), [2, 0, 1, 3], fixed, context=context,
                     top_p=0.9)
    assert torch.equal(a, b) and a.device.type == "cpu"
    seq = _sequence()
    subjects = (torch.arange(300) % 2)[:, None]
    plain = seq.sample(subjects, torch.Generator().manual_seed(5), seq.events.lookup_tables(), {1: 2}, {1: 0})
    moved_seq = _sequence().to("cpu")
    explicit = moved_seq.sample(subjects, torch.Generator(device="cpu").manual_seed(5),
                                moved_seq.events.lookup_tables(), {1: 2}, {1: 0})
    assert all(torch.equal(x, y) for x, y in zip(plain, explicit, strict=True))


def test_generators_moved_to_the_cpu_keep_the_cpu_contract() -> None:
    default, moved = tiny_generator(), tiny_generator().to("cpu")
    assert moved.sub_batch == SUB_BATCH
    controls = Controls(temperature=0.8)
    assert default.generate_chunk(1, 2, 3000, 0, controls).equals(moved.generate_chunk(1, 2, 3000, 0, controls))
    log, moved_log = tiny_log_generator(), tiny_log_generator().to("cpu")
    assert (moved_log.sub_batch, moved_log.event_batch) == (SUB_BATCH, EVENT_BATCH)
    assert log.generate_subjects_chunk(0, 1, 2500, 0).equals(moved_log.generate_subjects_chunk(0, 1, 2500, 0))
    assert log.generate_events_chunk(0, 1, 2500, 0).equals(moved_log.generate_events_chunk(0, 1, 2500, 0))


def test_a_larger_sub_batch_gives_valid_repeatable_rows() -> None:
    generator = tiny_generator().to("cpu", sub_batch=8192)
    chunk = generator.generate_chunk(7, 0, 10_000, 0).to_pandas()
    assert chunk.equals(tiny_generator().to("cpu", sub_batch=8192).generate_chunk(7, 0, 10_000, 0).to_pandas())
    assert chunk.head(3000).equals(generator.generate_chunk(7, 0, 3000, 0).to_pandas())  # a prefix, as on the CPU
    assert len(chunk) == 10_000 and chunk["id"].is_unique
    assert chunk["age"].between(17, 90).all() and set(chunk["sex"]) <= {"F", "M"}  # sex has no null, no rare code
    assert chunk["income"].notna().all() and chunk["fnlwgt"].dropna().between(0, 100).all()
    codes = generator._draw(8192, torch.Generator().manual_seed(0), plan(generator.codec, Controls()), Controls(), {})
    assert bool((codes < torch.tensor(generator.model_config.cardinalities)).all()) and codes.shape == (8192, 9)


def test_a_larger_event_batch_gives_linked_repeatable_events() -> None:
    log = tiny_log_generator().to("cpu", sub_batch=512, event_batch=1024)  # two event batches, the last one cut
    subjects = log.generate_subjects_chunk(3, 0, 1500, 0).to_pandas()
    events = log.generate_events_chunk(3, 0, 1500, 0).to_pandas()
    again = tiny_log_generator().to("cpu", sub_batch=512, event_batch=1024)
    assert events.equals(again.generate_events_chunk(3, 0, 1500, 0).to_pandas())
    assert len(subjects) == 1500 and set(events["player_id"]) <= set(subjects["id"])
    assert events.groupby("player_id").size().max() <= log.sequence.max_length
    years = events.groupby("player_id")["year"]
    assert bool((years.diff().dropna() >= 0).all())  # ordered by construction


def test_bad_device_settings_are_refused() -> None:
    with pytest.raises(SynthError, match="CUDA only"):
        tiny_generator().to("cpu", bf16=True)
    with pytest.raises(SynthError, match="positive"):
        tiny_generator().to("cpu", sub_batch=0)
    with pytest.raises(SynthError, match="multiple"):
        tiny_log_generator().to("cpu", sub_batch=4096, event_batch=6000)
    if not torch.cuda.is_available():
        with pytest.raises(SynthError, match="no CUDA device"):
            tiny_generator().to("cuda")
    assert DEVICE_SUB_BATCH > SUB_BATCH


def test_a_moved_generator_saves_the_same_weights() -> None:
    generator = tiny_generator()
    payload = generator.to_payload()
    assert generator.to("cpu", sub_batch=4096).to_payload()["weights.safetensors"] == payload["weights.safetensors"]
    log = tiny_log_generator()
    assert log.to("cpu").to_payload() == tiny_log_generator().to_payload()


def test_tiny_generators_decode_every_column() -> None:
    subjects, events = tiny_log_generator().sample(300, seed=1)
    assert list(events.columns) == ["player_id", "year", "hits", "pos"] and len(events) > 0
    assert np.isin(events["player_id"], subjects["id"]).all()
