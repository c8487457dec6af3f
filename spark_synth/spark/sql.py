"""Literals for expressions written as Spark SQL text.

Why text: a ``Column`` expression costs one py4j round trip per literal, comparison and cast, and each
round trip goes through pyspark's session check; written as text, a whole expression is one round trip,
parsed on the JVM, where its literals fold into constants. Names are quoted with
:func:`spark_synth.spark.schema.quoted`; these quote values, so any text or number is safe.
"""

from __future__ import annotations

import math


def string_literal(text: str) -> str:
    """A Spark SQL string literal holding exactly ``text`` (backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def double_literal(value: float) -> str:
    """A Spark SQL double literal that parses back to exactly ``value`` (Python's repr is the shortest exact)."""
    value = float(value)
    if not math.isfinite(value):
        return f"CAST({string_literal(repr(value))} AS DOUBLE)"
    return f"{value!r}D"
