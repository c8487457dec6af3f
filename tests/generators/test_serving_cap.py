"""The serving cap (`SPARK_SYNTH_MAX_REQUEST_ROWS`) in the pyfunc itself, on tiny generators: it counts the rows a
request returns, events included, seeded or not, and refuses before sampling."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from support.tiny_generators import SEQUENCE, tiny_generator, tiny_log_generator

from spark_synth.generators.mlflow_model import MAX_ROWS_ENV, GeneratorModel

MAX_LENGTH = SEQUENCE.max_length


def served(generator) -> GeneratorModel:
    model = GeneratorModel()
    model.generator = generator
    return model


@pytest.fixture(scope="module")
def log_model() -> GeneratorModel:
    return served(tiny_log_generator())


def refused(model: GeneratorModel, request: pd.DataFrame, *named: str) -> None:
    with pytest.raises(MlflowException) as error:
        model.predict(None, request)
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    for words in (*named, "Fix:", MAX_ROWS_ENV):
        assert words in error.value.message


def test_seed_rows_count_against_the_cap(monkeypatch) -> None:
    monkeypatch.setenv(MAX_ROWS_ENV, "2")
    model = served(tiny_generator())
    refused(model, pd.DataFrame({"sex": ["F", "M", "F"]}), "3 seed rows", "at most 2 rows")
    assert len(model.predict(None, pd.DataFrame({"sex": ["F", "M"]}))) == 2


def test_event_log_cap_counts_events_before_sampling(monkeypatch, log_model: GeneratorModel) -> None:
    """Subjects times the maximum sequence length bounds the answer, so the cap holds whatever is drawn."""
    monkeypatch.setenv(MAX_ROWS_ENV, str(3 * MAX_LENGTH))
    refused(log_model, pd.DataFrame({"rows": [2, 2]}), "4 subjects", f"up to {MAX_LENGTH} events",
            "maximum sequence length", "(3 subjects)")
    rows = log_model.predict(None, pd.DataFrame({"rows": [3], "seed": [1]}))
    assert 3 <= len(rows) <= 3 * MAX_LENGTH


def test_seeded_event_log_requests_are_capped(monkeypatch, log_model: GeneratorModel) -> None:
    monkeypatch.setenv(MAX_ROWS_ENV, str(3 * MAX_LENGTH))
    refused(log_model, pd.DataFrame({"team": ["a", "b", "c", "a"]}), "4 seed subjects")
    assert 3 <= len(log_model.predict(None, pd.DataFrame({"team": ["a", "b", "c"]}))) <= 3 * MAX_LENGTH
    events = pd.DataFrame({"id": [1, 1, 2, 3, 4], "team": ["a", "a", "b", "c", "a"], "event.hits": [5, 6, 7, 8, 9]})
    refused(log_model, events, "4 seed subjects")
    refused(log_model, pd.DataFrame({"id": range(3 * MAX_LENGTH + 1), "event.hits": 1}), "seed rows")
