"""Controlled sampling without Spark: nucleus cut, blind heads, forbidden codes, and the controls' checks."""

from __future__ import annotations

import pytest
import torch

from spark_synth.encoding import TableCodec
from spark_synth.encoding.stats import TableStats
from spark_synth.errors import SynthError
from spark_synth.generators.controls import Controls, plan
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sampling import nucleus

STATS = TableStats.from_json({"columns": [
    {"name": "sex", "spark_type": "string", "encoding": "categorical", "values": ["F", "M"], "has_nulls": False,
     "has_rare": False},
    {"name": "income", "spark_type": "string", "encoding": "categorical", "values": ["low", "high"],
     "has_nulls": False, "has_rare": False},
    {"name": "job", "spark_type": "string", "encoding": "categorical", "values": ["a", "b", "c"], "has_nulls": True,
     "has_rare": True},
]})


def _model() -> FlatARGN:
    torch.manual_seed(0)
    model = FlatARGN(ModelConfig(cardinalities=[4, 4, 5], column_slices=[(0, 1), (1, 2), (2, 3)], hidden=8))
    with torch.no_grad():  # strong weights: every column depends on the others
        for p in model.parameters():
            p.mul_(4)
    return model.eval()


def test_nucleus_keeps_the_likeliest_codes_up_to_the_mass() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]])
    assert (nucleus(probs, 0.7) > 0).tolist() == [[True, True, False, False], [False, False, True, True]]
    assert (nucleus(probs, 0.1) > 0).tolist() == [[True, False, False, False], [False, False, False, True]]  # likeliest stays
    assert torch.equal(nucleus(probs, 0.7)[probs > 0.2], probs[probs > 0.2])  # kept codes keep their probability
    assert torch.equal(nucleus(probs, 1.0), probs)


def test_a_blind_column_ignores_the_columns_drawn_before_it() -> None:
    """The fairness target drawn blind: the same draws whatever the sensitive value (independence)."""
    model = _model()
    draws = {}
    for sensitive in (2, 3):
        fixed = {0: torch.full((500,), sensitive)}
        for blind in (True, False):
            codes = model.sample(500, torch.Generator().manual_seed(1), [0, 1, 2], fixed, blind={0, 1} if blind else None)
            draws[sensitive, blind] = codes[:, 1]
    assert torch.equal(draws[2, True], draws[3, True])
    assert not torch.equal(draws[2, False], draws[3, False])  # the seeing head does depend on it


def test_forbidden_codes_are_never_drawn() -> None:
    codes = _model().sample(2000, torch.Generator().manual_seed(2), forbidden={2: [0, 1]}, temperature=3.0)
    assert not torch.isin(codes[:, 2], torch.tensor([0, 1])).any()


def test_plan_orders_seeded_rebalanced_and_fair_columns_first() -> None:
    codec = TableCodec(STATS)
    assert plan(codec, Controls(), ["income", "job"]).order == [1, 2, 0]
    steps = plan(codec, Controls(rebalance_column="job", rebalance_shares={"a": 0.5, "b": 0.5}))
    assert steps.order == [2, 0, 1] and steps.rebalance[0] == 2 and steps.rebalance[1][:, 0].tolist() == [2, 3]
    fair = plan(codec, Controls(fairness_target="income", fairness_sensitive="sex"))
    assert fair.order == [0, 1, 2] and fair.blind == {0, 1}
    with pytest.raises(SynthError, match="a seed fixes the rows itself"):
        plan(codec, Controls(rebalance_column="job", rebalance_shares={"a": 1.0}), ["income"])


@pytest.mark.parametrize("controls,problem", [
    (Controls(temperature=0), "temperature must be positive"),
    (Controls(top_p=1.5), "top-p must lie in (0, 1]"),
    (Controls(fairness_target="income"), "needs both a target and a sensitive column"),
    (Controls(rebalance_column="job", rebalance_shares={"a": 0.5, "b": 0.2}), "add up to 1"),
    (Controls(rebalance_column="job", rebalance_shares={"a": 0.5, "zz": 0.5}), "does not hold"),
    (Controls(rebalance_column="nope", rebalance_shares={"a": 1.0}), "not a column the generator models"),
    (Controls(fairness_target="income", fairness_sensitive="income"), "are the same"),
])
def test_bad_controls_name_the_problem(controls: Controls, problem: str) -> None:
    with pytest.raises(SynthError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        plan(TableCodec(STATS), controls)
