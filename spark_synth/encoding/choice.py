"""Which encoding a column gets: one rule for the exact (protected) and the differentially private analysis.

Both analyses ask the same questions in the same order and differ only in their evidence: the exact one
counts protected values and reads protected bounds, the DP one reads released noisy histograms and, for
integrality, the schema alone. The rule in three steps, each taken when its evidence is there:

1. :func:`first_choice`: what the schema and the config settle alone (keys, dates, text, a requested
   digits/binned), or None: a number, decided by its data;
2. :func:`numeric_choice`: such a number from its data (few values, whole numbers);
3. :func:`digits_or_binned`: once the bounds are known, digits too wide for their sub-columns become bins.

:func:`check_digits` refuses digits for fractional data, where the data shows its fractions (exact side).
"""

from __future__ import annotations

from spark_synth.encoding.numeric import MAX_DIGITS
from spark_synth.errors import SynthError

REQUESTABLE_NUMERIC = ("digits", "binned")  # numeric encodings a config may force


def first_choice(kind: str, requested: str, is_key: bool = False) -> str | None:
    """The encoding the schema and the config settle without the data, or None: a number, decided by its data.

    A key (requested, or ``is_key``: detected as an identifier) is regenerated, never learned, so it wins.
    A date or time is always coded as one, whatever else was asked, as its histograms are (DP). Text and
    booleans, and anything asked to be categories, are categories. A requested digits/binned is kept.
    What is left is a number with ``auto`` (or ``numeric``): only its values can tell how to code it.
    """
    if requested == "key" or is_key:
        return "key"
    if kind == "datetime":
        return "datetime"
    if kind == "categorical" or requested == "categorical":
        return "categorical"
    if requested in REQUESTABLE_NUMERIC:
        return requested
    return None


def numeric_choice(requested: str, discrete: bool, integral: bool) -> str:
    """A number's encoding from its data: categories when it holds few values (``discrete``) and ``auto`` was
    asked (``numeric`` asks for a number), else digits for whole numbers (exact values, small softmaxes) and
    quantile bins for fractions. A requested digits/binned is kept."""
    if requested in REQUESTABLE_NUMERIC:
        return requested
    if requested == "auto" and discrete:
        return "categorical"
    return "digits" if integral else "binned"


def digits_or_binned(encoding: str, requested: str, low: float, high: float) -> str:
    """The encoding once the bounds are known: digits spanning 10**MAX_DIGITS values or more would need too
    many digit sub-columns, so they become bins, unless digits were asked for."""
    if encoding == "digits" and high - low >= 10**MAX_DIGITS and requested != "digits":
        return "binned"
    return encoding


def check_digits(name: str, encoding: str, integral: bool) -> None:
    """Refuse digits for a column whose data holds fractions: digits code whole numbers, and rounding a
    requested encoding's input silently would change the data. Only a request gets here (``auto`` picks
    bins for fractions)."""
    if encoding == "digits" and not integral:
        raise SynthError(f"column '{name}' holds fractional numbers, so it cannot use digit encoding.",
                         f"Use `encoding: binned` (or auto) for '{name}'.")
