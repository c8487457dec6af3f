"""The encoding rule (spark_synth.encoding.choice), case by case, and the exact and the DP analysis agreeing on it.

No Spark session: the rule is plain Python, and the agreement test hands both analyses the same evidence in
place of their Spark jobs (value counts and bounds for the exact one, released histograms for the DP one).
"""

from __future__ import annotations

from collections import Counter

import pytest

from spark_synth.encoding.choice import check_digits, digits_or_binned, first_choice, numeric_choice
from spark_synth.encoding.numeric import MAX_DIGITS
from spark_synth.errors import SynthError

WIDE = 10**MAX_DIGITS  # a span of this many values is too wide for digits


@pytest.mark.parametrize("kind", ["categorical", "numeric", "datetime"])
def test_a_key_wins_whether_requested_or_detected(kind: str) -> None:
    assert first_choice(kind, "key") == "key"
    assert first_choice(kind, "auto", is_key=True) == "key"


@pytest.mark.parametrize("requested", ["auto", "datetime", "categorical", "digits", "binned", "numeric"])
def test_a_date_or_time_is_coded_as_one_whatever_else_was_asked(requested: str) -> None:
    assert first_choice("datetime", requested) == "datetime"


@pytest.mark.parametrize(("kind", "requested"), [("categorical", "auto"), ("categorical", "categorical"),
                                                 ("numeric", "categorical")])
def test_text_and_numbers_asked_to_be_categories_are_categories(kind: str, requested: str) -> None:
    assert first_choice(kind, requested) == "categorical"


@pytest.mark.parametrize("requested", ["digits", "binned"])
def test_a_requested_numeric_encoding_is_kept(requested: str) -> None:
    assert first_choice("numeric", requested) == requested
    for discrete in (False, True):
        for integral in (False, True):
            assert numeric_choice(requested, discrete, integral) == requested


@pytest.mark.parametrize("requested", ["auto", "numeric"])
def test_a_number_otherwise_is_decided_by_its_data(requested: str) -> None:
    assert first_choice("numeric", requested) is None


def test_a_number_with_few_values_is_categorical_only_when_auto() -> None:
    assert numeric_choice("auto", discrete=True, integral=True) == "categorical"
    assert numeric_choice("auto", discrete=True, integral=False) == "categorical"
    assert numeric_choice("numeric", discrete=True, integral=True) == "digits"  # `numeric` asks for a number
    assert numeric_choice("numeric", discrete=True, integral=False) == "binned"


@pytest.mark.parametrize("requested", ["auto", "numeric"])
def test_whole_numbers_get_digits_and_fractions_bins(requested: str) -> None:
    assert numeric_choice(requested, discrete=False, integral=True) == "digits"
    assert numeric_choice(requested, discrete=False, integral=False) == "binned"


def test_digits_too_wide_for_their_sub_columns_become_bins_unless_requested() -> None:
    assert digits_or_binned("digits", "auto", 0, WIDE - 1) == "digits"
    assert digits_or_binned("digits", "auto", 0, WIDE) == "binned"
    assert digits_or_binned("digits", "numeric", -WIDE, 0) == "binned"
    assert digits_or_binned("digits", "digits", 0, 10 * WIDE) == "digits"
    for encoding in ("binned", "datetime", "categorical", "key"):
        assert digits_or_binned(encoding, "auto", 0, 10 * WIDE) == encoding


def test_digits_for_fractional_data_are_refused() -> None:
    with pytest.raises(SynthError, match="'x' holds fractional numbers.*encoding: binned"):
        check_digits("x", "digits", integral=False)
    check_digits("x", "digits", integral=True)
    for encoding in ("binned", "categorical", "datetime", "key"):
        check_digits("x", encoding, integral=False)


# --- both analyses, same evidence -------------------------------------------------------------------------------

DAY_MICROS = 86_400_000_000
DAYS = [11_000 + d for d in range(60)]  # days since 1970 of a date column, 10 rows each

CASES = [  # (spark type, requested encoding, {value: rows}, encoding both analyses choose)
    ("string", "auto", {"a": 50, "b": 30, "c": 20}, "categorical"),
    ("int", "auto", {1: 100, 2: 100, 3: 100}, "categorical"),
    ("int", "numeric", {1: 100, 2: 100, 3: 100}, "digits"),
    ("double", "auto", {0.5: 100, 1.5: 100}, "categorical"),
    ("int", "categorical", {i: 10 for i in range(200)}, "categorical"),
    ("int", "auto", {i: 10 for i in range(200)}, "digits"),
    ("int", "auto", {1000 * i: 10 for i in range(200)}, "binned"),  # a span past 10**MAX_DIGITS
    ("int", "digits", {1000 * i: 10 for i in range(200)}, "digits"),  # ... unless digits were asked for
    ("int", "binned", {i: 10 for i in range(200)}, "binned"),
    ("double", "auto", {i + 0.5: 10 for i in range(200)}, "binned"),
    ("date", "auto", dict.fromkeys(DAYS, 10), "datetime"),
    ("date", "categorical", dict.fromkeys(DAYS, 10), "datetime"),  # as DP releases it: log bins, no exact values
]


@pytest.mark.parametrize(("spark_type", "requested", "rows", "expected"), CASES)
def test_the_exact_and_the_dp_analysis_choose_alike(monkeypatch: pytest.MonkeyPatch, spark_type: str, requested: str,
                                                    rows: dict, expected: str) -> None:
    plan = _plan(spark_type, requested)
    assert (_exact_choice(monkeypatch, plan, rows), _dp_choice(monkeypatch, plan, rows)) == (expected, expected)


def test_the_exact_analysis_refuses_digits_for_fractional_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the exact analysis sees whether a column's numbers are whole; the DP one reads the schema."""
    with pytest.raises(SynthError, match="fractional"):
        _exact_choice(monkeypatch, _plan("double", "digits"), {i + 0.5: 10 for i in range(200)})
    assert _exact_choice(monkeypatch, _plan("double", "digits"), {float(i): 10 for i in range(200)}) == "digits"


def _plan(spark_type: str, requested: str):
    from spark_synth.encoding.types import logical_kind
    from spark_synth.spark.schema import ColumnPlan

    return ColumnPlan("x", spark_type, logical_kind(spark_type), requested)


def _exact_choice(monkeypatch: pytest.MonkeyPatch, plan, rows: dict) -> str:
    """The encoding :func:`analyze` chooses when its Spark jobs find ``rows`` (value: rows holding it)."""
    from spark_synth.encoding.protect import K_MAX
    from spark_synth.spark import analyze as exact

    n = sum(rows.values())
    flags = {"null": 0}
    if plan.spark_type == "double":
        flags["fractional"] = sum(c for v, c in rows.items() if v != int(v))
    ordinal = [v * DAY_MICROS for v in rows] if plan.kind == "datetime" else list(rows)
    monkeypatch.setattr(exact, "draw_k", lambda: K_MAX)
    monkeypatch.setattr(exact, "_overview", lambda df, plans: (n, {"x": {"non_null": n, "flags": flags}}))
    monkeypatch.setattr(exact, "_probe", lambda df, plans: {p.name: (len(rows), n) for p in plans})
    monkeypatch.setattr(exact, "_keys", lambda *args: set())
    monkeypatch.setattr(exact, "_value_counts", lambda df, plans, unit: {p.name: dict(rows) for p in plans})
    monkeypatch.setattr(exact, "_bounds", lambda df, plans, k, unit: {p.name: (min(ordinal), max(ordinal))
                                                                      for p in plans})
    monkeypatch.setattr(exact, "_quantiles", lambda df, plans, bounds, n_rows, k: {p.name: (list(bounds[p.name]), [])
                                                                                   for p in plans})
    return exact.analyze(None, [plan]).columns[0].encoding


def _dp_choice(monkeypatch: pytest.MonkeyPatch, plan, rows: dict) -> str:
    """The encoding :func:`private_statistics` chooses when the same ``rows`` are released without noise."""
    from spark_synth.privacy import histograms as H
    from spark_synth.spark import private_analyze as dp

    histograms = H.histograms_of(plan)  # exact values and/or log bins (dates in days from the DP origin)
    exact = {v if isinstance(v, str) else float(v): float(c) for v, c in rows.items()}
    bins: Counter = Counter()
    for v, c in rows.items():
        if H.BINNED in histograms:
            bins[int(H.bin_code([v - H.DATE_ORIGIN_DAYS if plan.kind == "datetime" else v])[0])] += float(c)
    released = {"exact": exact if H.EXACT in histograms else {}, "bins": dict(bins), "null": None}
    monkeypatch.setattr(dp, "released_partitions", lambda *args: [released])
    return dp.private_statistics(None, [plan], 1.0, 1.0, float(sum(rows.values()))).columns[0].encoding
