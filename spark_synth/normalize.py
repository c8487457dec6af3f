"""Input values made modelable before analysis: NaN/inf become null, ISO date strings become dates.

Dates stored as text (``"1934-02-05"``) are common in exported tables. As strings they would be
thousands of rare categories; as dates they are modelled as calendar parts and written back as
text in the same ISO form.
"""

from __future__ import annotations

from dataclasses import replace

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_synth.schema import ColumnPlan, quoted

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$"
TEXT_DATE_SHARE = 0.99  # of non-null values that must parse before a text column counts as dates
PROBE_ROWS = 10_000  # first rows that must look like dates before a text column is scanned in full


def normalize(df: DataFrame, plans: list[ColumnPlan], keep: tuple[str, ...] = ()) -> tuple[DataFrame, list[ColumnPlan]]:
    """The planned columns (plus ``keep``, untouched) with NaN/inf as null and date-like text parsed.

    One aggregation job decides which text columns hold dates; their plans become datetime plans
    with ``text_format`` set, so the output writes them back as text.
    """
    formats = _text_date_formats(df, [p for p in plans if p.spark_type == "string" and p.encoding in ("auto", "datetime")])
    exprs, out_plans = [], []
    for p in plans:
        c = F.col(quoted(p.name))
        if p.spark_type in ("float", "double"):
            c = F.when(F.isnan(c) | (F.abs(c) == float("inf")), F.lit(None)).otherwise(c)
        text_format = formats.get(p.name)
        if text_format:
            c = _parse(c, text_format)
            p = replace(p, spark_type="date" if text_format == "date" else "timestamp_ntz", kind="datetime",
                        text_format=text_format)
        exprs.append(c.alias(p.name))
        out_plans.append(p)
    return df.select(*exprs, *[F.col(quoted(k)) for k in keep]), out_plans


def _parse(column: Column, text_format: str) -> Column:
    """Text to date/timestamp; a value that does not parse (e.g. Feb 30) becomes null, never an error."""
    target = "DATE" if text_format == "date" else "TIMESTAMP_NTZ"
    text = F.regexp_replace(column, "T", " ") if text_format == "timestamp" else column
    return text.try_cast(target.lower())


def _text_date_formats(df: DataFrame, plans: list[ColumnPlan]) -> dict[str, str]:
    """Which text columns hold ISO dates or timestamps (at least TEXT_DATE_SHARE of their values).

    The first PROBE_ROWS rows rule out the columns that are plainly text, so only date-like columns
    are scanned in full (most tables have none: the full scan was a regex over every string value).
    A column whose first rows are not dates stays text, which loses no value.
    """
    if not plans:
        return {}
    probe = df.select(*[F.col(quoted(p.name)) for p in plans]).limit(PROBE_ROWS)
    candidates = [p for p in plans if p.name in _formats(probe, plans, unseen=True)]
    return _formats(df, candidates) if candidates else {}


def _formats(df: DataFrame, plans: list[ColumnPlan], unseen: bool = False) -> dict[str, str]:
    """Column -> "date" / "timestamp" for the columns whose values are dates; with ``unseen``, columns
    without a value here count too (as "unseen"), since they cannot be ruled out."""
    exprs = []
    for i, p in enumerate(plans):
        c = F.col(quoted(p.name))
        exprs += [F.count(c).alias(f"n{i}"),
                  F.sum(F.when(c.rlike(DATE_PATTERN), 1).otherwise(0)).alias(f"d{i}"),
                  F.sum(F.when(c.rlike(TIMESTAMP_PATTERN), 1).otherwise(0)).alias(f"t{i}")]
    row = df.agg(*exprs).collect()[0]
    formats = {}
    for i, p in enumerate(plans):
        n = row[f"n{i}"] or 0
        if not n:
            if unseen:
                formats[p.name] = "unseen"
            continue
        if (row[f"d{i}"] or 0) >= TEXT_DATE_SHARE * n:
            formats[p.name] = "date"
        elif (row[f"t{i}"] or 0) + (row[f"d{i}"] or 0) >= TEXT_DATE_SHARE * n:
            formats[p.name] = "timestamp"
    return formats
