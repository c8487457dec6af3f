"""The shared training loop, without Spark: one column-order draw for both trainers, DP's step and time
limits, early stopping, and a DP checkpoint bound to its plan."""

from __future__ import annotations

import pytest
import torch

from spark_synth.errors import SynthError
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.privacy.plan import PrivateSteps
from spark_synth.training.checkpoint import Checkpointer
from spark_synth.training.data import FlatSamples
from spark_synth.training.loop import Placement, PlainTrainer, TrainSettings
from spark_synth.training.private import PrivateTrainer, fit_private


def _model() -> FlatARGN:
    torch.manual_seed(0)
    return FlatARGN(ModelConfig(cardinalities=[3, 5, 4, 7], column_slices=[(0, 1), (1, 3), (3, 4)], hidden=8,
                                dropout=0.0))


def _samples(n: int = 200) -> FlatSamples:
    g = torch.Generator().manual_seed(1)
    return FlatSamples(torch.stack([torch.randint(0, c, (n,), generator=g) for c in (3, 5, 4, 7)], 1))


class _RecordingPlain(PlainTrainer):
    def step(self, index: torch.Tensor, before: torch.Tensor) -> None:
        self.seen.append(before.clone())
        super().step(index, before)


class _RecordingPrivate(PrivateTrainer):
    def step(self, index: torch.Tensor, before: torch.Tensor) -> None:
        self.seen.append(before.clone())
        super().step(index, before)


def _plan(steps: int, sample_rate: float = 0.1, noise: float = 1.0) -> PrivateSteps:
    return PrivateSteps(noise_multiplier=noise, sample_rate=sample_rate, steps=steps, expected_batch=20.0)


def test_plain_and_private_training_draw_the_same_column_orders() -> None:
    settings = TrainSettings(max_epochs=1, batch_size=20, seed=5, progress=False)
    plain = _RecordingPlain(_model(), _samples(), _samples(20), settings)
    plain.seen = []
    plain.run()
    private = _RecordingPrivate(_model(), _samples(), settings, _plan(10), 1e-5)
    private.seen = []
    private.run()
    assert len(plain.seen) == len(private.seen) == 10
    assert all(torch.equal(a, b) for a, b in zip(plain.seen, private.seen, strict=True))
    fresh = PlainTrainer(_model(), _samples(), _samples(20), settings)
    assert all(torch.equal(fresh.column_order(), b) for b in plain.seen)  # the loop's draw, from the seed alone
    assert any(not torch.equal(b, plain.canonical) for b in plain.seen)  # random orders, not only the table's


def test_private_training_takes_at_most_the_planned_steps_and_records_at_the_last() -> None:
    trainer = _RecordingPrivate(_model(), _samples(), TrainSettings(progress=False), _plan(7, sample_rate=0.25), 1e-5)
    trainer.seen = []
    result = trainer.run()
    assert len(trainer.seen) == trainer.steps_taken == 7 and result.stopped_by == "planned_steps"
    assert [r["step"] for r in result.history] == [4, 7]  # every ~1/sample_rate steps, and the last one
    assert all("loss" not in key for r in result.history for key in r)  # DP never looks at a loss


def test_private_training_stops_when_out_of_time() -> None:
    model = _model()
    result, done = fit_private(model, _samples(), TrainSettings(max_minutes=1e-9, progress=False), _plan(1000), 1e-5)
    assert result.stopped_by == "time_budget" and 1 <= done.steps < 1000
    assert result.history[-1]["step"] == done.steps  # the cut is recorded, with the epsilon of the steps taken


def test_plain_training_stops_early_without_improvement() -> None:
    settings = TrainSettings(max_epochs=50, batch_size=50, learning_rate=1e-12, patience=2, seed=0, progress=False)
    result = PlainTrainer(_model(), _samples(), _samples(40), settings).run()
    assert result.stopped_by == "early_stopping"
    assert result.best_epoch == 1 and result.epochs == 3 and len(result.history) == 3


def test_a_private_checkpoint_resumes_its_own_plan_and_refuses_another(tmp_path) -> None:
    def placement() -> Placement:
        return Placement(checkpointer=Checkpointer(str(tmp_path), "job", writer=True))

    first, _ = fit_private(_model(), _samples(), TrainSettings(progress=False), _plan(8, 0.25), 1e-5,
                           placement=placement())
    assert first.resumed_at == 0  # it saved after step 4, not after its last step
    again, done = fit_private(_model(), _samples(), TrainSettings(progress=False), _plan(8, 0.25), 1e-5,
                              placement=placement())
    assert again.resumed_at == 4 and done.steps == 8 and [r["step"] for r in again.history] == [4, 8]
    with pytest.raises(SynthError, match="other DP-SGD settings"):
        fit_private(_model(), _samples(), TrainSettings(progress=False), _plan(8, 0.25, noise=2.0), 1e-5,
                    placement=placement())
