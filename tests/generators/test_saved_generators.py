"""Generator files saved before the redesign (the layout move, the generator contract) still load, and sample
exactly what they sampled then: the files and the output contract did not change with the code around them.

``saved_before_redesign/`` was written by commit 187e0a2 from ``tiny_generators`` (random weights, made-up
statistics: no real data), with the samples that version drew from them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from spark_synth.errors import SynthError
from spark_synth.generators.event_log import LogGenerator
from spark_synth.generators.flat import FlatGenerator
from spark_synth.generators.kinds import load_directory

SAVED = Path(__file__).parent / "saved_before_redesign"


def test_a_flat_generator_from_before_loads_and_samples_the_same_rows() -> None:
    generator = load_directory(str(SAVED / "flat"))
    assert isinstance(generator, FlatGenerator)
    expected = pd.read_parquet(SAVED / "flat_sample.parquet")
    pd.testing.assert_frame_equal(generator.sample(300, seed=3, chunk_size=100), expected)


def test_an_event_log_generator_from_before_loads_and_samples_the_same_tables() -> None:
    generator = load_directory(str(SAVED / "log"))
    assert isinstance(generator, LogGenerator)
    subjects, events = generator.sample(60, seed=3, chunk_size=25)
    pd.testing.assert_frame_equal(subjects, pd.read_parquet(SAVED / "log_subjects_sample.parquet"))
    pd.testing.assert_frame_equal(events, pd.read_parquet(SAVED / "log_events_sample.parquet"))


def test_a_generator_of_another_format_version_is_refused_with_a_fix(tmp_path: Path) -> None:
    copy = tmp_path / "flat"
    shutil.copytree(SAVED / "flat", copy)
    model = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**model, "format_version": 99}))
    with pytest.raises(SynthError, match="generator format this version cannot read") as refused:
        load_directory(str(copy))
    assert "retrain" in refused.value.fix


def test_a_directory_without_a_generator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="not a spark-synth generator"):
        load_directory(str(tmp_path))
    with pytest.raises(SynthError, match="no generator at"):
        load_directory(str(tmp_path / "missing"))
