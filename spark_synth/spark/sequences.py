"""Event logs on Spark: check the subject/event link, derive sequence columns, analyze and encode.

Events are put in order with a window (partition by subject, sort within it): no driver collect.
The subject is the unit throughout: the validation split, the protection thresholds of event
statistics (distinct subjects), and the protected maximum sequence length.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_synth.config import TrainConfig
from spark_synth.encoding import TableCodec
from spark_synth.encoding.order import FIRST, GAP, gap_type
from spark_synth.encoding.packing import Field
from spark_synth.encoding.protect import draw_k, pooled_counts
from spark_synth.encoding.sequence import SequenceSpec
from spark_synth.encoding.stats import TableStats
from spark_synth.encoding.types import logical_kind
from spark_synth.errors import SynthError
from spark_synth.privacy import plan as dp
from spark_synth.privacy.histograms import bounds, histograms_of
from spark_synth.privacy.plan import StatsRelease
from spark_synth.spark.analyze import analyze, validated_overview
from spark_synth.spark.encode import encode_to_shards, shard_layout
from spark_synth.spark.io import derived_subjects, read_table
from spark_synth.spark.normalize import normalize, private_text_date_formats, text_date_candidates
from spark_synth.spark.private_analyze import private_statistics, released_partitions
from spark_synth.spark.schema import ColumnPlan, plan_columns, quoted
from spark_synth.spark.split import BUCKETS
from spark_synth.spark.workspace import Workspace
from spark_synth.tables import ColumnSettings, EventLink, Schema
from spark_synth.training.data import SPLIT_COLUMN, STEP_COLUMN, SUBJECT_ID

logger = logging.getLogger(__name__)

KEY_TYPES = ("string", "tinyint", "smallint", "int", "bigint")
LENGTH_PLAN = ColumnPlan("__length", "bigint", "numeric", "auto")  # a subject's number of events, under DP


def col(name: str):
    return F.col(quoted(name))


@dataclass
class LogSource:
    subjects: DataFrame  # protected subject columns' source, with the key
    events: DataFrame  # events that reference a subject, with the foreign key
    orphan_events: int
    subject_name: str
    event_name: str
    n_subjects: int
    link: EventLink
    subject_settings: dict[str, ColumnSettings]  # the config's column settings of each table
    event_settings: dict[str, ColumnSettings]


@dataclass
class PreparedLog:
    subject_stats: TableStats
    event_stats: TableStats
    sequence: SequenceSpec  # how events link and order: keys, order column, protected max length
    subject_fields: list[Field]  # where the codes lie in the shards
    event_fields: list[Field]
    training_subjects: DataFrame
    training_events: DataFrame
    validation_subjects: DataFrame
    validation_events: DataFrame
    orphan_events: int
    release: StatsRelease | None = None  # the DP statistics release, when training under a budget
    # subjects of each length 0..max: noisy (released) under DP, else pooled so that each count rests on k subjects
    length_weights: list[float] | None = None


def read_log(spark: SparkSession, schema: Schema, config: TrainConfig) -> LogSource:
    """Read both tables of an event-log schema and refuse a broken link: missing columns, bad keys, null order
    values, no events, column settings that neither table has."""
    subject_spec, event_spec, link = schema.subjects, schema.events, schema.link
    event_name = event_spec.source if isinstance(event_spec.source, str) else "the event DataFrame"
    events = read_table(spark, event_spec.source, config.format)
    key, fk, order = link.subject_key, link.foreign_key, link.order_by
    _require_column(events, fk, event_name, "--foreign-key")
    if subject_spec.source is None:
        subject_name = f"the subjects of {event_name} (its distinct '{fk}' values)"
        subjects = derived_subjects(events, fk, key)
    else:
        subject_name = subject_spec.source if isinstance(subject_spec.source, str) else "the subject DataFrame"
        subjects = read_table(spark, subject_spec.source, config.format)
    _require_column(subjects, key, subject_name, "--subject-key")
    if order is not None:
        _require_column(events, order, event_name, "--order-by")
        if order == fk:
            raise SynthError(f"--order-by {order} is the foreign key.", "Order events by a date, time or number column.")
    for df, name, column in ((subjects, subject_name, key), (events, event_name, fk)):
        kind = df.schema[column].dataType.simpleString()
        if kind not in KEY_TYPES:
            raise SynthError(f"key column '{column}' of {name} is {kind}; keys must be strings or integers.",
                             "Link the tables by a string or integer key column.")

    checks = subjects.agg(F.count(F.lit(1)).alias("n"), F.count(col(key)).alias("non_null"),
                          F.countDistinct(col(key)).alias("distinct")).collect()[0]
    if checks["n"] == 0:
        raise SynthError(f"the subject table {subject_name} is empty (0 rows).", "Point --subjects at a table with rows.")
    many = partial(_count, private=config.private)
    if checks["non_null"] < checks["n"]:
        raise SynthError(f"{many(checks['n'] - checks['non_null'])} subject(s) in {subject_name} have a null '{key}'.",
                         f"Give every subject a key, or filter out rows with a null '{key}'.")
    if checks["distinct"] < checks["n"]:
        raise SynthError(f"subject key '{key}' is not unique in {subject_name}: "
                         f"{many(checks['n'] - checks['distinct'])} duplicate key(s).",
                         f"Deduplicate the subject table so each '{key}' appears once.")

    event_checks = events.agg(F.count(F.lit(1)).alias("n"),
                              F.sum(F.when(col(fk).isNull(), 1).otherwise(0)).alias("null_fk"),
                              *([F.sum(F.when(col(order).isNull(), 1).otherwise(0)).alias("null_order")]
                                if order else [])).collect()[0]
    if event_checks["n"] == 0:
        raise SynthError(f"the event table {event_name} is empty (0 rows).",
                         "Point --events at a table with events, or train a flat table with --data.")
    if order and event_checks["null_order"]:
        raise SynthError(f"{many(event_checks['null_order'])} event(s) in {event_name} have a null order column "
                         f"'{order}'.",
                         f"Fill or drop the events with a null '{order}', or choose another --order-by.")
    key_values = subjects.select(col(key).cast("string").alias("__key"))
    linked = events.join(key_values, col(fk).cast("string") == F.col("__key"), "left_semi")
    orphans = int(event_checks["n"]) - linked.count()
    if config.private:  # under DP even whether there are any is data: the same note either way
        logger.info(f"note: events in {event_name} that reference no subject in {subject_name}, if any, are excluded from "
              "training (whether there are any, and how many, is withheld under differential privacy).")
    elif orphans:
        logger.warning(f"{orphans} event(s) in {event_name} reference no subject in {subject_name}; "
              "they are excluded from training.")
    if orphans == event_checks["n"]:
        raise SynthError(f"no event in {event_name} references a subject of {subject_name} "
                         f"('{fk}' never matches '{key}').", "Check --subject-key and --foreign-key.")
    schema.check_columns({subject_spec.name: subjects.columns, event_spec.name: events.columns})
    subject_settings = schema.settings_for(subject_spec, subjects.columns)
    event_settings = {c: s for c, s in schema.settings_for(event_spec, events.columns).items() if c not in (fk, order)}
    return LogSource(subjects, linked, orphans, subject_name, event_name, int(checks["n"]), link, subject_settings,
                     event_settings)


def _count(n: int, private: bool) -> str:
    """How a refusal counts bad rows: exactly, or under DP only as "some" (a count would be exact data)."""
    return "some" if private else str(n)


def _require_column(df: DataFrame, column: str, name: str, flag: str) -> None:
    if column not in df.columns:
        raise SynthError(f"{flag} column '{column}' is not in {name} (it has {df.columns}).",
                         f"Pass the right column name to {flag}.")


def prepare_log(config: TrainConfig, source: LogSource, workspace: Workspace, buckets: int = 1) -> PreparedLog:
    """Analyze both tables with the subject as the unit, and encode them to shards in the workspace (in
    ``buckets`` groups of whole subjects, one directory per group, when several ranks share them).

    A resumed training reuses the statistics it saved: under DP they are released once.
    """
    key, fk, order = source.link.subject_key, source.link.foreign_key, source.link.order_by
    # the key is regenerated, never modelled
    subject_plans = [p if p.name != key else ColumnPlan(key, p.spark_type, p.kind, "key")
                     for p in plan_columns(source.subjects.schema, source.subject_settings)]
    if key not in [p.name for p in subject_plans]:
        raise SynthError(f"the subject key '{key}' is excluded in the config.", f"Do not exclude '{key}'.")
    event_plans = plan_columns(source.events.select(*[col(c) for c in source.events.columns if c != fk]).schema,
                               source.event_settings)
    saved = workspace.saved_stats()
    budget = dp.budget_for(config) if config.private else None
    subject_formats, event_formats = _text_formats(source, subject_plans, event_plans, saved, budget, fk)
    subjects, subject_plans = normalize(source.subjects, subject_plans, formats=subject_formats)
    events, event_plans = normalize(source.events, event_plans, keep=(fk,), formats=event_formats)
    release, length_weights = None, None
    if budget:
        validated_overview(subjects, subject_plans, source.subject_name)
        derived_plans = _sequenced_events(events, event_plans, source.link, 1)[1]  # lazy: only the plans are used
        date_tests = len(text_date_candidates(subject_plans)) + len(text_date_candidates(event_plans))
        release = dp.plan_statistics(budget, [subject_plans, derived_plans],
                                     extra_partitions=len(histograms_of(LENGTH_PLAN)), text_date_columns=date_tests)
    if saved:
        subject_stats, event_stats = TableStats.from_json(saved["subject_stats"]), TableStats.from_json(saved["event_stats"])
        max_length, length_weights = saved["max_length"], saved["length_weights"]
    elif release:
        subject_stats = private_statistics(subjects, subject_plans, release.noise_std, release.threshold,
                                           release.noisy_count(source.n_subjects, "subjects"))
        max_length, length_weights = _private_max_length(source, config, release)
        # subjects without events: the noisy subject count less the released lengths (post-processing)
        length_weights[0] += max(subject_stats.n_rows - sum(length_weights), 0.0)
    else:
        subject_stats = analyze(subjects, subject_plans, source.subject_name)
        max_length, length_weights = _max_length(source, config)
    sequenced, event_plans, order_info = _sequenced_events(events, event_plans, source.link, max_length)
    if not saved:
        subject_stats = subject_stats.excluding([c for c in source.subjects.columns
                                                 if c not in {p.name for p in subject_plans}])
        if release:
            event_stats = private_statistics(sequenced, event_plans, release.noise_std, release.threshold, None,
                                             unit=fk, noisy_units=subject_stats.n_rows)
        else:
            event_stats = analyze(sequenced, event_plans, source.event_name, unit=fk)
        event_stats = event_stats.excluding([c for c in source.events.columns
                                             if c not in {p.name for p in event_plans} | {fk, order}])
        workspace.save_stats({"subject_stats": subject_stats.to_json(), "event_stats": event_stats.to_json(),
                              "max_length": max_length,
                              "length_weights": length_weights, "text_formats": [subject_formats, event_formats]})
    sequence = SequenceSpec(key, fk, source.events.schema[fk].dataType.simpleString(), order, max_length,
                            tuple(source.events.columns), **order_info)
    if not TableCodec(event_stats).sub_columns:
        raise SynthError(f"the events of {source.event_name} have no column to model besides the keys.",
                         "Add event attribute columns or an --order-by column.")

    subject_split = _subject_flag(col(key), config)
    flagged = subjects.withColumn(SPLIT_COLUMN, subject_split).withColumn(SUBJECT_ID, _subject_id(col(key), config))
    subject_dir, event_dir = workspace.encoded_subjects, workspace.encoded_events
    if workspace.has_encoded:  # a resumed training: the shards of the first attempt are complete
        subject_fields, event_fields = shard_layout(TableCodec(subject_stats)), shard_layout(TableCodec(event_stats))
    else:  # the subjects first, the events last: the events' _SUCCESS marks both complete
        subject_fields = encode_to_shards(flagged, subject_stats, subject_dir,
                                          (SUBJECT_ID, SPLIT_COLUMN), buckets)
        event_fields = encode_to_shards(sequenced.withColumn(SUBJECT_ID, _subject_id(col(fk), config)), event_stats,
                                        event_dir, (SUBJECT_ID, STEP_COLUMN), buckets)
    event_split = _subject_flag(col(fk), config)
    return PreparedLog(subject_stats, event_stats, sequence, subject_fields, event_fields,
                       subjects.where(~subject_split), events.where(~event_split),
                       subjects.where(subject_split), events.where(event_split), source.orphan_events, release,
                       length_weights)


def _text_formats(source: LogSource, subject_plans: list[ColumnPlan], event_plans: list[ColumnPlan],
                  saved: dict[str, Any] | None, budget: dp.Budget | None, fk: str) -> tuple[dict | None, dict | None]:
    """Which text columns of each table hold dates: as a resumed training saved them; under DP from noisy
    margins, both tables in one release (a subject moves both); else decided exactly by :func:`normalize`."""
    if saved:
        return saved["text_formats"]
    if budget is None:
        return None, None
    noise_std = dp.text_date_noise_std(len(text_date_candidates(subject_plans)) + len(text_date_candidates(event_plans)))
    return (private_text_date_formats(source.subjects, subject_plans, noise_std),
            private_text_date_formats(source.events, event_plans, noise_std, unit=fk))


def _subject_flag(key, config: TrainConfig):
    """Validation membership from a hash of the subject key: a subject and all its events on one side."""
    bucket = F.pmod(F.xxhash64(F.lit(config.seed), key.cast("string")), F.lit(BUCKETS))
    return bucket < F.lit(int(round(config.validation_fraction * BUCKETS)))


def _subject_id(key, config: TrainConfig):
    return F.xxhash64(F.lit(config.seed), F.lit("subject"), key.cast("string"))


def _max_length(source: LogSource, config: TrainConfig) -> tuple[int, list[float]]:
    """The protected maximum sequence length, the k-th largest length, so no single subject sets it; and how many
    subjects have each length 0..max (longer ones at the max), rare lengths pooled with their neighbours (k subjects).

    One job: the histogram of lengths gives both. It is bounded: n events hold fewer than sqrt(2n) distinct lengths.
    """
    lengths = source.events.groupBy(col(source.link.foreign_key).cast("string").alias("__key")).count()
    histogram = {int(r["count"]): int(r["subjects"])
                 for r in lengths.groupBy("count").agg(F.count(F.lit(1)).alias("subjects")).collect()}
    k = draw_k()  # secret: not recomputable from the stored seed
    longest, seen = 0, 0
    for length in sorted(histogram, reverse=True):
        seen += histogram[length]
        if seen >= k:
            longest = length
            break
    if seen < k:
        raise SynthError(f"only {seen} subject(s) have events, too few to publish a protected sequence length.",
                         "Provide more subjects with events.")
    if config.max_sequence_length:
        longest = min(longest, config.max_sequence_length)
    histogram[0] = source.n_subjects - sum(histogram.values())  # subjects without events
    counts = [0.0] * (longest + 1)
    for length, subjects in histogram.items():
        counts[min(length, longest)] += subjects
    return longest, pooled_counts(counts, k)


def _private_max_length(source: LogSource, config: TrainConfig, release: StatsRelease) -> tuple[int, list[float]]:
    """The DP maximum sequence length, the top of the released length histograms (one entry per subject),
    and the released noisy count of each length 1..max (for planning, and where the length head starts)."""
    lengths = source.events.groupBy(col(source.link.foreign_key)).agg(F.count(F.lit(1)).alias(LENGTH_PLAN.name))
    released = released_partitions(lengths, [LENGTH_PLAN], release.noise_std, release.threshold)[0]
    span = bounds(released["bins"], released["exact"])
    if span is None:
        raise SynthError("too few subjects share any sequence length for a DP maximum length at this epsilon.",
                         "Raise --max-epsilon, or provide more subjects.")
    longest = max(1, int(span[1]))
    longest = min(longest, config.max_sequence_length) if config.max_sequence_length else longest
    weights = [0.0] * (longest + 1)
    for length, count in released["exact"].items():
        weights[min(int(length), longest)] += max(count, 0.0)
    return longest, weights


def _sequenced_events(events: DataFrame, plans: list[ColumnPlan], link: EventLink,
                      max_length: int) -> tuple[DataFrame, list[ColumnPlan], dict]:
    """Events numbered within their subject (truncated to ``max_length``), with the order column split
    into its first value and the gaps; returns the frame, the column plans and the order details."""
    fk, order = link.foreign_key, link.order_by
    others = [c for c in events.columns if c not in (fk, order)]
    sort_keys = [col(order)] if order else []
    window = Window.partitionBy(col(fk)).orderBy(*sort_keys, *[col(c).asc_nulls_first() for c in others])
    numbered = events.withColumn(STEP_COLUMN, (F.row_number().over(window) - 1).cast("int"))
    numbered = numbered.where(F.col(STEP_COLUMN) < max_length)
    order_plan = next((p for p in plans if p.name == order), None)
    other_plans = [p for p in plans if p.name != order]
    order_type = order_plan.spark_type if order_plan else None
    gap_kind = gap_type(order_type) if order_type else None
    info = {"order_type": order_type, "order_text": order_plan.text_format if order_plan else None,
            "gap_coded": gap_kind is not None}
    if gap_kind is None:  # no order, or an order column without arithmetic: sorted, then modelled as it is
        return numbered, plans, info
    previous = F.lag(col(order)).over(window)
    if order_type == "date":
        gap = F.datediff(col(order), previous)
    elif order_type in ("timestamp", "timestamp_ntz"):
        gap = (F.unix_micros(col(order).cast("timestamp")) - F.unix_micros(previous.cast("timestamp"))) / 1e6
    else:
        gap = col(order) - previous
    numbered = numbered.withColumn(FIRST, F.when(F.col(STEP_COLUMN) == 0, col(order)))
    numbered = numbered.withColumn(GAP, F.when(F.col(STEP_COLUMN) > 0, gap.cast(gap_kind)))
    plans = [ColumnPlan(FIRST, order_type, logical_kind(order_type) or "numeric", "auto"),
             ColumnPlan(GAP, gap_kind, "numeric", "auto"), *other_plans]  # order parts first: pinned first at sampling
    return numbered, plans, info
