"""Small randomly initialised generators (flat and event log) built from hand-written statistics: no Spark,
no training. For sampling tests and for smoke runs of the generation benchmarks."""

from __future__ import annotations

import torch

from spark_synth.encoding import TableCodec
from spark_synth.encoding.sequence import SequenceSpec
from spark_synth.encoding.stats import TableStats
from spark_synth.generators.event_log import LogGenerator
from spark_synth.generators.flat import FlatGenerator
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig

FLAT_STATS = TableStats.from_json({"columns": [
    {"name": "id", "spark_type": "bigint", "encoding": "key"},
    {"name": "age", "spark_type": "bigint", "encoding": "digits", "min": 17, "max": 90, "has_nulls": False},
    {"name": "workclass", "spark_type": "string", "encoding": "categorical",
     "values": ["private", "self-emp", "gov", "never"], "has_nulls": True, "has_rare": True},
    {"name": "fnlwgt", "spark_type": "double", "encoding": "binned", "min": 0.0, "max": 100.0,
     "edges": [0.0, 5.0, 20.0, 50.0, 80.0, 100.0], "point_masses": [], "integral": False, "has_nulls": True},
    {"name": "sex", "spark_type": "string", "encoding": "categorical", "values": ["F", "M"], "has_nulls": False,
     "has_rare": False},
    {"name": "born", "spark_type": "date", "encoding": "datetime", "min": 631152000000000, "max": 946598400000000,
     "has_nulls": False},
    {"name": "income", "spark_type": "string", "encoding": "categorical", "values": ["<=50K", ">50K"],
     "has_nulls": False, "has_rare": False},
]})

SUBJECT_STATS = TableStats.from_json({"columns": [
    {"name": "id", "spark_type": "bigint", "encoding": "key"},
    {"name": "team", "spark_type": "string", "encoding": "categorical", "values": ["a", "b", "c"], "has_nulls": False,
     "has_rare": True},
    {"name": "weight", "spark_type": "bigint", "encoding": "digits", "min": 150, "max": 260, "has_nulls": True},
]})

EVENT_STATS = TableStats.from_json({"columns": [
    {"name": "__order_first", "spark_type": "bigint", "encoding": "digits", "min": 1990, "max": 2020, "has_nulls": True},
    {"name": "__order_gap", "spark_type": "bigint", "encoding": "digits", "min": 0, "max": 3, "has_nulls": True},
    {"name": "hits", "spark_type": "bigint", "encoding": "digits", "min": 0, "max": 250, "has_nulls": False},
    {"name": "pos", "spark_type": "string", "encoding": "categorical", "values": ["P", "C", "OF"], "has_nulls": True,
     "has_rare": False},
]})

SEQUENCE = SequenceSpec.from_json({"subject_key": "id", "foreign_key": "player_id", "foreign_key_type": "bigint", "order_by": "year",
            "max_length": 8, "event_columns": ["player_id", "year", "hits", "pos"], "order_type": "bigint",
            "order_text": None, "gap_coded": True})


def tiny_generator(seed: int = 0, hidden: int = 32) -> FlatGenerator:
    """A flat generator with key, digits, categorical, binned and date columns, random weights."""
    codec = TableCodec(FLAT_STATS)
    config = ModelConfig(cardinalities=codec.cardinalities, column_slices=codec.column_slices, hidden=hidden,
                         dropout=0.0)
    return FlatGenerator(FLAT_STATS, config, _random_state(config, codec, seed), {})


def tiny_log_generator(seed: int = 0, hidden: int = 32) -> LogGenerator:
    """An event-log generator (subjects keyed by ``id``, events ordered by a gap-coded ``year``), random weights."""
    subject_codec = TableCodec(SUBJECT_STATS)
    subject_config = ModelConfig(cardinalities=subject_codec.cardinalities, column_slices=subject_codec.column_slices,
                                 hidden=hidden, dropout=0.0)
    subjects = FlatGenerator(SUBJECT_STATS, subject_config, _random_state(subject_config, subject_codec, seed + 1), {})
    event_codec = TableCodec(EVENT_STATS)
    events = ModelConfig(cardinalities=event_codec.cardinalities, column_slices=event_codec.column_slices,
                         hidden=hidden, dropout=0.0)
    config = SequenceModelConfig(subject_cardinalities=subject_codec.cardinalities, events=events,
                                 max_length=SEQUENCE.max_length, history=16, state=8, dropout=0.0)
    torch.manual_seed(seed + 2)
    model = SequenceARGN(config)
    model.events.forbid_codes(event_codec.unreleased_codes())
    return LogGenerator(subjects, EVENT_STATS, SEQUENCE, config, model.state_dict(), {})


def _random_state(config: ModelConfig, codec: TableCodec, seed: int) -> dict[str, torch.Tensor]:
    """Random weights; codes the statistics rule out (nulls of a column without any, ...) forbidden, as training
    leaves them."""
    torch.manual_seed(seed)
    model = FlatARGN(config)
    model.forbid_codes(codec.unreleased_codes())
    return model.state_dict()
