"""Input values made modelable before analysis: NaN/inf become null, ISO date strings become dates.

Dates stored as text (``"1934-02-05"``) are common in exported tables. As strings they would be
thousands of rare categories; as dates they are modelled as calendar parts and written back as
text in the same ISO form.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_synth.encoding.stats import ColumnStats
from spark_synth.spark.schema import ColumnPlan, quoted

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$"
TEXT_DATE_SHARE = 0.99  # of non-null values that must parse before a text column counts as dates
PRIVATE_TEXT_DATE_SHARE = 0.95  # the same under DP, with room for the noise
NOISE_MARGIN = 3.0  # under DP a column is dates when its noisy margin clears this many noise deviations
PROBE_ROWS = 10_000  # first rows that must look like dates before a text column is scanned in full


def normalize(df: DataFrame, plans: list[ColumnPlan], keep: tuple[str, ...] = (),
              formats: dict[str, str] | None = None) -> tuple[DataFrame, list[ColumnPlan]]:
    """The planned columns (plus ``keep``, untouched) with NaN/inf as null and date-like text parsed.

    ``formats`` names the text columns that hold dates ("date"/"timestamp"); by default one aggregation job
    decides (:func:`text_date_formats`). Their plans become datetime plans with ``text_format`` set, so the
    output writes them back as text.
    """
    if formats is None:
        formats = text_date_formats(df, plans)
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


def text_date_candidates(plans: list[ColumnPlan]) -> list[ColumnPlan]:
    """The text columns that may hold dates: known from the schema and settings alone."""
    return [p for p in plans if p.spark_type == "string" and p.encoding in ("auto", "datetime")]


def text_date_formats(df: DataFrame, plans: list[ColumnPlan]) -> dict[str, str]:
    """Which text columns hold ISO dates or timestamps (at least TEXT_DATE_SHARE of their values).

    The first PROBE_ROWS rows rule out the columns that are plainly text, so only date-like columns
    are scanned in full (most tables have none: the full scan was a regex over every string value).
    A column whose first rows are not dates stays text, which loses no value.
    """
    candidates = text_date_candidates(plans)
    if not candidates:
        return {}
    probe = df.select(*[F.col(quoted(p.name)) for p in candidates]).limit(PROBE_ROWS)
    seen = _formats(probe, candidates, unseen=True)  # one job for every candidate
    likely = [p for p in candidates if p.name in seen]
    return _formats(df, likely) if likely else {}


def private_text_date_formats(df: DataFrame, plans: list[ColumnPlan], noise_std: float,
                              unit: str | None = None) -> dict[str, str]:
    """The DP twin of :func:`text_date_formats`: decided on noisy margins, never on exact counts.

    Per candidate column two margins, dates (and dates or timestamps) less PRIVATE_TEXT_DATE_SHARE of the
    values, to which a row adds at most 1 in size (a subject, with ``unit``: the mean over its values), are
    released with Gaussian noise of ``noise_std`` (:func:`spark_synth.privacy.plan.text_date_noise_std`, the budget's
    accounting counts it). A column is dates when its margin clears ``NOISE_MARGIN`` noise deviations, so a
    column holding few values stays text.
    """
    candidates = text_date_candidates(plans)
    if not candidates:
        return {}
    margins = []
    for i, p in enumerate(candidates):
        c = F.col(quoted(p.name))
        held = F.when(c.isNotNull(), PRIVATE_TEXT_DATE_SHARE).otherwise(0.0)
        date = F.when(c.rlike(DATE_PATTERN), 1.0).otherwise(0.0)
        either = F.when(c.rlike(DATE_PATTERN) | c.rlike(TIMESTAMP_PATTERN), 1.0).otherwise(0.0)
        margins += [(date - held).alias(f"d{i}"), (either - held).alias(f"t{i}"),
                    c.isNotNull().cast("double").alias(f"n{i}")]
    names = [m for i in range(len(candidates)) for m in (f"d{i}", f"t{i}")]
    rows = df.select(*margins, *([F.col(quoted(unit)).alias("__unit")] if unit else []))
    if unit:  # one subject, one vote: the mean over its values, however many events it has
        sums = [F.sum(f"{m}{i}").alias(f"{m}{i}") for i in range(len(candidates)) for m in "dtn"]
        rows = rows.groupBy("__unit").agg(*sums)
        rows = rows.select(*[(F.col(f"{m}{i}") / F.greatest(F.col(f"n{i}"), F.lit(1.0))).alias(f"{m}{i}")
                             for i in range(len(candidates)) for m in "dt"])
    sums = rows.agg(*[F.sum(m).alias(m) for m in names]).collect()[0]
    noise = np.random.default_rng(secrets.randbits(128)).normal(0.0, noise_std, len(names))
    noisy = {m: (sums[m] or 0.0) + z for m, z in zip(names, noise, strict=True)}
    formats = {}
    for i, p in enumerate(candidates):
        if noisy[f"d{i}"] >= NOISE_MARGIN * noise_std:
            formats[p.name] = "date"
        elif noisy[f"t{i}"] >= NOISE_MARGIN * noise_std:
            formats[p.name] = "timestamp"
    return formats


def saved_text_formats(columns: Iterable[ColumnStats]) -> dict[str, str]:
    """The text-date decisions a saved statistics file records (a resumed training reuses them)."""
    return {c.name: c.text_format for c in columns if c.text_format}


def _parse(column: Column, text_format: str) -> Column:
    """Text to date/timestamp; a value that does not parse (e.g. Feb 30) becomes null, never an error."""
    target = "DATE" if text_format == "date" else "TIMESTAMP_NTZ"
    text = F.regexp_replace(column, "T", " ") if text_format == "timestamp" else column
    return text.try_cast(target.lower())


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
