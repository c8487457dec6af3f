"""The evaluation stage: how close (accuracy, coherence), how safe (matches, distances, membership audit)
and how useful (TSTR) synthetic data is, against the training data and a holdout the generator never saw.

Accuracy, coherence and exact matches are Spark aggregations over every row; distances, the audit and
the utility models work on samples drawn by Spark (equal sizes where the figures compare sides), so the
driver holds at most a few tens of thousands of rows whatever the size of the synthetic data.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_synth import __version__
from spark_synth.config import EvaluateConfig
from spark_synth.errors import SynthError
from spark_synth.evaluation import plots
from spark_synth.evaluation.accuracy import accuracy_summary
from spark_synth.evaluation.bins import column_kind
from spark_synth.evaluation.coherence import coherence_summary
from spark_synth.evaluation.distances import RecordEncoder, distance_summary
from spark_synth.evaluation.matches import identical_shares
from spark_synth.evaluation.membership import membership_audit
from spark_synth.evaluation.report import render
from spark_synth.evaluation.utility import tstr
from spark_synth.spark.analyze import identifier_columns
from spark_synth.spark.io import derived_subjects, read_table

logger = logging.getLogger(__name__)

AUDIT_SYNTHETIC_ROWS = 50_000  # synthetic rows the attacker searches
EVENTS_COLUMN = "events per subject"
EVENT_CAP = 100  # events per subject kept for event distances (at most the real 95th percentile)


@dataclass
class Evaluation:
    result: dict[str, Any]  # every figure, per column and per pair included
    headline: dict[str, float]  # the figures that become MLflow metrics
    html: str


class _Progress:
    """Numbered steps with elapsed time, so a long evaluation shows where it is."""

    def __init__(self, enabled: bool, steps: int) -> None:
        self.enabled, self.steps, self.done, self.started = enabled, steps, 0, time.monotonic()
        self.marks: list[tuple[str, float]] = []

    def seconds(self) -> dict[str, float]:
        """Seconds spent in each step so far."""
        ends = [t for _, t in self.marks[1:]] + [time.monotonic()]
        return {what: round(end - start, 1) for (what, start), end in zip(self.marks, ends, strict=True)}

    def __call__(self, what: str) -> None:
        self.done += 1
        self.marks.append((what, time.monotonic()))
        if self.enabled:
            logger.info(f"evaluate [{self.done}/{self.steps}] {what} ({time.monotonic() - self.started:.0f} s)")


def evaluate(config: EvaluateConfig, spark: SparkSession | None = None, privacy: dict | None = None) -> Evaluation:
    """Score the synthetic data of ``config``; ``privacy`` is a generator's DP record (epsilon, delta)."""
    if spark is None:
        from spark_synth.spark.session import session_for

        spark = session_for(config)
    cached: list[DataFrame] = []
    try:
        step = _Progress(config.progress, (7 if config.is_log else 5) + bool(config.target))
        run = _evaluate_log if config.is_log else _evaluate_flat
        result = run(spark, config, cached, step)
        result["seconds"] = step.seconds()
    finally:
        for df in cached:
            df.unpersist()
    result["privacy"] = privacy
    result["created"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["version"] = __version__
    headline = headline_figures(result)
    return Evaluation(result, headline, render(result, headline, _plots(result)))


def _read(spark: SparkSession, source: Any, fmt: str | None, role: str) -> DataFrame:
    df = read_table(spark, source, fmt)
    if not df.columns:
        raise SynthError(f"the {role} data has no columns.", f"Check the --{role.replace(' ', '-')} path.")
    return df


def _persisted(df: DataFrame, cached: list[DataFrame]) -> DataFrame:
    """Kept (memory, spilling to disk) while the evaluation passes over it several times."""
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(df)
    return df


def _same_columns(reference: DataFrame, other: DataFrame, role: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in other.columns]
    if missing:
        raise SynthError(f"the {role} data lacks the column(s) {missing} that the training data has.",
                         f"Evaluate {role} data with the training table's columns (a generator trained on it "
                         "writes them all).")


def _check_target(target: str | None, columns: list[str], where: str) -> None:
    if target is not None and target not in columns:
        raise SynthError(f"target column {target!r} is not in the {where}.", f"Choose --target among {columns}.")


def _compared_columns(training: DataFrame, keep: set[str], drop: set[str]) -> list[str]:
    """The columns but ``drop`` and identifiers (unique per row, except ``keep``): a generator writes new
    keys, never the real ones, so their values are not compared."""
    identifiers = [c for c in identifier_columns(training) if c not in keep | drop]
    if identifiers:
        logger.info(f"evaluate: leaving out identifier column(s) {identifiers} (unique per row)")
    return [c for c in training.columns if c not in set(identifiers) | drop]


def _counts(frames: dict[str, DataFrame]) -> dict[str, int]:
    counts = {role: df.count() for role, df in frames.items()}
    empty = [role for role, n in counts.items() if n == 0]
    if empty:
        raise SynthError(f"the {', '.join(empty)} data has no rows.", "Point the evaluation at non-empty tables.")
    return counts


def _sample(df: DataFrame, n: int, total: int, seed: int) -> pd.DataFrame:
    """``n`` random rows as pandas (dates as datetimes, decimals as floats); Spark keeps only a top-n."""
    fraction = min(1.0, 1.5 * n / max(total, 1) + 1e-3)
    source = df.sample(fraction=fraction, seed=seed) if fraction < 1 else df
    frame = source.orderBy(F.rand(seed)).limit(n).toPandas()
    for field in df.schema.fields:
        if isinstance(field.dataType, T.DateType | T.TimestampType | T.TimestampNTZType):
            frame[field.name] = pd.to_datetime(frame[field.name], errors="coerce")
        elif isinstance(field.dataType, T.DecimalType):
            frame[field.name] = pd.to_numeric(frame[field.name], errors="coerce").astype(float)
    return frame


def _kinds(df: DataFrame, columns: list[str]) -> dict[str, str]:
    return {c: column_kind(df.schema[c].dataType) for c in columns}


def _privacy_figures(synthetic: DataFrame, training: DataFrame, holdout: DataFrame, columns: list[str],
                     counts: dict[str, int], config: EvaluateConfig, step: _Progress,
                     audit_frames: tuple[DataFrame, DataFrame, DataFrame] | None = None,
                     audit_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Exact matches (all rows), distances (equal-size samples) and the membership audit (on the audit
    frames: the same rows, or one row per subject for an event log)."""
    step("identical matches (all synthetic rows)")
    matches = identical_shares(synthetic, training, holdout, columns, counts["training"], counts["holdout"],
                               config.seed)
    step("distances to closest records")
    n = min(config.distance_rows, *counts.values())
    kinds = _kinds(training, columns)
    samples = [_sample(df.select(columns), n, counts[role], config.seed)
               for role, df in (("synthetic", synthetic), ("training", training), ("holdout", holdout))]
    distances = distance_summary(*samples, kinds, config.seed)

    step("membership-inference audit")
    syn_a, trn_a, hol_a = audit_frames or (synthetic, training, holdout)
    audit_counts = audit_counts or counts
    audit_columns = [c for c in trn_a.columns if c in syn_a.columns]
    m = min(config.audit_rows, audit_counts["holdout"] // 2, audit_counts["training"])
    if m < 2:
        raise SynthError(f"the holdout has {audit_counts['holdout']} rows (subjects): too few for the membership "
                         "audit.", "Use a holdout of at least a few hundred rows.")
    holdout_rows = _sample(hol_a.select(audit_columns), 2 * m, audit_counts["holdout"], config.seed + 1)
    members = _sample(trn_a.select(audit_columns), m, audit_counts["training"], config.seed + 2)
    attacker = _sample(syn_a.select(audit_columns), min(AUDIT_SYNTHETIC_ROWS, audit_counts["synthetic"]),
                       audit_counts["synthetic"], config.seed + 3)
    non_members, reference = holdout_rows.iloc[:m], holdout_rows.iloc[m:]
    kinds = _kinds(trn_a, audit_columns)
    nullable = {c for c in audit_columns if any(f[c].isna().any() for f in (members, holdout_rows, attacker))}
    encoder = RecordEncoder.fit(pd.concat([members, holdout_rows], ignore_index=True), kinds, nullable)
    audit = membership_audit(*(encoder.transform(f) for f in (attacker, members, non_members, reference)))
    return {"matches": matches, "distances": distances, "membership": audit}


def _utility(synthetic: DataFrame, training: DataFrame, holdout: DataFrame, counts: dict[str, int],
             config: EvaluateConfig, step: _Progress) -> dict | None:
    if not config.target:
        return None
    step(f"utility: TSTR vs TRTR on {config.target}")
    n = min(config.utility_rows, counts["training"], counts["synthetic"])
    frames = [_sample(df, n if role != "holdout" else config.utility_rows, counts[role], config.seed + 4)
              for role, df in (("training", training), ("synthetic", synthetic), ("holdout", holdout))]
    try:
        return tstr(*frames, config.target, config.seed)
    except ValueError as exc:
        raise SynthError(f"the utility test cannot run: {exc}.", "Choose another --target column.") from exc


def _evaluate_flat(spark: SparkSession, config: EvaluateConfig, cached: list[DataFrame], step: _Progress
                   ) -> dict[str, Any]:
    step("reading and counting")
    training = _read(spark, config.training, config.format, "training")
    _check_target(config.target, training.columns, "training data")
    holdout = _read(spark, config.holdout, config.format, "holdout")
    synthetic = _read(spark, config.synthetic, config.format, "synthetic")
    _same_columns(training, holdout, "holdout", training.columns)
    _same_columns(training, synthetic, "synthetic", training.columns)
    columns = _compared_columns(training, {config.target} if config.target else set(), set())
    if not columns:
        raise SynthError("every column of the training data is an identifier: nothing to compare.",
                         "Evaluate tables with attribute columns.")
    synthetic, training, holdout = (_persisted(df.select(columns), cached) for df in (synthetic, training, holdout))
    counts = _counts({"synthetic": synthetic, "training": training, "holdout": holdout})
    step("accuracy (uni-, bi- and trivariate marginals)")
    accuracy = accuracy_summary(training.unionByName(holdout), synthetic, columns, max_triples=config.max_triples,
                                seed=config.seed)
    privacy = _privacy_figures(synthetic, training, holdout, columns, counts, config, step)
    return {"kind": "flat", "title": "Synthetic data quality report", "rows": counts, "accuracy": accuracy,
            **privacy, "utility": _utility(synthetic, training, holdout, counts, config, step)}


def _subject_rows(subjects: DataFrame, events: DataFrame, key: str, foreign_key: str, event_columns: dict[str, str],
                  seed: int) -> DataFrame:
    """One row per subject with events: its attributes, its number of events and one random event's values
    (mostlyai-qa's flat view of a sequence, which its event accuracy is computed on)."""
    pick = Window.partitionBy(foreign_key).orderBy(F.rand(seed))
    picked = (events.withColumn("__n", F.count(F.lit(1)).over(Window.partitionBy(foreign_key)))
              .withColumn("__pick", F.row_number().over(pick)).where(F.col("__pick") == 1)
              .select(F.col(foreign_key).alias("__key"), F.col("__n").alias(EVENTS_COLUMN),
                      *[F.col(c).alias(name) for c, name in event_columns.items()]))
    return subjects.join(picked, subjects[key] == picked["__key"], "inner").drop("__key", key)


def _capped_events(events: DataFrame, foreign_key: str, cap: int, seed: int) -> DataFrame:
    """Events with their subject's event count, at most ``cap`` random events per subject (the key dropped),
    as mostlyai-qa embeds sequences for distances."""
    by_subject = Window.partitionBy(foreign_key)
    return (events.withColumn(EVENTS_COLUMN, F.count(F.lit(1)).over(by_subject))
            .withColumn("__pick", F.row_number().over(by_subject.orderBy(F.rand(seed))))
            .where(F.col("__pick") <= cap).drop("__pick", foreign_key))


def _evaluate_log(spark: SparkSession, config: EvaluateConfig, cached: list[DataFrame], step: _Progress
                  ) -> dict[str, Any]:
    key, fk = config.subject_key, config.foreign_key
    step("reading and counting")
    tables = {f"{side} {part}": _read(spark, getattr(config, f"{side}_{part}"), config.format, f"{side} {part}")
              for side in ("training", "holdout", "synthetic") for part in ("events", "subjects")
              if getattr(config, f"{side}_{part}") is not None}
    for part, column in (("events", fk), ("subjects", key)):  # the events first: given alone, they make the subjects
        for side in ("training", "holdout", "synthetic"):
            if part == "subjects" and f"{side} subjects" not in tables:  # their distinct keys
                tables[f"{side} subjects"] = derived_subjects(tables[f"{side} events"], fk, key)
        if column not in tables[f"training {part}"].columns:
            raise SynthError(f"the training {part} have no column {column!r}.",
                             f"Pass the {part[:-1]} table's key column name (columns: {tables[f'training {part}'].columns}).")
        for side in ("holdout", "synthetic"):
            _same_columns(tables[f"training {part}"], tables[f"{side} {part}"], f"{side} {part}",
                          tables[f"training {part}"].columns)
    if config.order_by and config.order_by not in tables["training events"].columns:
        raise SynthError(f"the events have no column {config.order_by!r} to order by.", "Check --order-by.")
    _check_target(config.target, [c for c in tables["training subjects"].columns if c != key],
                  "subject table (the target of an event log is a subject column)")
    subject_columns = _compared_columns(tables["training subjects"], {config.target} if config.target else set(),
                                        {key})
    event_list = _compared_columns(tables["training events"], {config.order_by} if config.order_by else set(), {fk})
    if not event_list:
        raise SynthError("the event table has only its key column: nothing to compare.", "Pass the full event table.")
    sides = ("training", "holdout", "synthetic")
    subjects = {s: _persisted(tables[f"{s} subjects"].select(key, *subject_columns), cached) for s in sides}
    events = {s: _persisted(tables[f"{s} events"].select(fk, *event_list), cached) for s in sides}
    counts = _counts({s: subjects[s] for s in subjects})
    event_counts = _counts({s: events[s] for s in events})

    step("subject table accuracy")
    real_subjects = subjects["training"].unionByName(subjects["holdout"])
    subject_accuracy = (accuracy_summary(real_subjects.drop(key), subjects["synthetic"].drop(key),
                                         max_triples=config.max_triples, seed=config.seed)
                        if subject_columns else None)
    step("event accuracy (one event per subject, with its subject)")
    renamed = {c: (c if c not in subject_columns and c != EVENTS_COLUMN else f"{c} (event)") for c in event_list}
    rows = {s: _persisted(_subject_rows(subjects[s], events[s], key, fk, renamed, config.seed), cached)
            for s in subjects}
    targets = [EVENTS_COLUMN, *renamed.values()]
    accuracy = accuracy_summary(rows["training"].unionByName(rows["holdout"]), rows["synthetic"],
                                [*subject_columns, *targets], max_triples=config.max_triples, seed=config.seed,
                                targets=targets)
    step("coherence and sequence lengths")
    coherence = coherence_summary(events["training"].unionByName(events["holdout"]), events["synthetic"], fk,
                                  event_list, order_by=config.order_by,
                                  real_subject_keys=real_subjects.select(key),
                                  synthetic_subject_keys=subjects["synthetic"].select(key), seed=config.seed)

    # mostlyai-qa's overall accuracy of a sequence table counts coherence as a fourth figure
    marginal = [accuracy[k] for k in ("univariate", "bivariate", "trivariate") if not math.isnan(accuracy[k])]
    accuracy["overall"] = float(np.mean([*marginal, coherence["coherence"]]))

    q95 = events["training"].groupBy(fk).count().agg(F.percentile_approx("count", 0.95)).first()[0]
    cap = int(min(EVENT_CAP, max(1, q95 or 1)))
    capped = {s: _persisted(_capped_events(events[s], fk, cap, config.seed), cached) for s in events}
    capped_counts = _counts(capped)
    row_counts = _counts(rows)
    privacy = _privacy_figures(capped["synthetic"], capped["training"], capped["holdout"], [EVENTS_COLUMN, *event_list],
                               capped_counts, config, step,
                               audit_frames=(rows["synthetic"], rows["training"], rows["holdout"]),
                               audit_counts=row_counts)
    utility = None
    if config.target:  # features: the other subject columns and the number of events
        lengths = {s: events[s].groupBy(F.col(fk).alias("__key")).agg(F.count(F.lit(1)).alias(EVENTS_COLUMN))
                   for s in events}
        frames = {s: subjects[s].join(lengths[s], subjects[s][key] == lengths[s]["__key"], "left")
                  .drop("__key", key).fillna(0, [EVENTS_COLUMN]) for s in subjects}
        utility = _utility(frames["synthetic"], frames["training"], frames["holdout"], counts, config, step)
    return {"kind": "log", "title": "Synthetic event log quality report",
            "rows": {f"{s} subjects": counts[s] for s in counts} | {f"{s} events": event_counts[s] for s in event_counts},
            "accuracy": accuracy, "subject_accuracy": subject_accuracy, "coherence": coherence, **privacy,
            "utility": utility}


def headline_figures(result: dict[str, Any]) -> dict[str, float]:
    """The figures a reader looks at first; each becomes an MLflow metric (NaN ones are left out)."""
    accuracy = result["accuracy"]
    out: dict[str, float] = {f"accuracy_{k}": accuracy[k] for k in ("overall", "univariate", "bivariate", "trivariate")}
    out |= {f"accuracy_expected_{k}": accuracy["expected"][k] for k in ("overall", "univariate", "bivariate")}
    if result.get("subject_accuracy"):
        out |= {f"subject_accuracy_{k}": result["subject_accuracy"][k] for k in ("overall", "univariate", "bivariate")}
    if result.get("coherence"):
        coherence = result["coherence"]
        out |= {k: coherence[k] for k in ("coherence", "consecutive_pairs", "distinct_per_subject",
                                          "subjects_per_category", "sequence_length")}
    distances, matches, audit = result["distances"], result["matches"], result["membership"]
    out |= {k: matches[k] for k in ("identical_training", "identical_holdout", "identical_training_all")}
    out |= {k: distances[k] for k in ("dcr_share", "dcr_share_all_columns", "dcr_training", "dcr_holdout",
                                      "nndr_training", "nndr_holdout")}
    out |= {"membership_auc": audit["auc"], "membership_auc_low": audit["auc_low"],
            "membership_auc_high": audit["auc_high"], "membership_closest_record_auc": audit["closest_record_auc"]}
    if result.get("utility"):
        utility = result["utility"]
        out |= {"utility_tstr": utility["tstr"], "utility_trtr": utility["trtr"],
                "utility_importance_rank_correlation": utility["importance_rank_correlation"]}
    if result.get("privacy"):
        out |= {"epsilon": result["privacy"]["epsilon"], "delta": result["privacy"]["delta"]}
    return {k: float(v) for k, v in out.items() if v is not None and not math.isnan(float(v))}


def _plots(result: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for prefix, accuracy in (("", result["accuracy"]), ("subject_", result.get("subject_accuracy"))):
        if not accuracy:
            continue
        out[f"{prefix}distributions"] = plots.distributions(accuracy["distributions"], accuracy["per_column"])
        columns = list(dict.fromkeys(c for pair in accuracy["association"] for c in pair.split("|", 1)))
        if len(columns) > 1:
            out[f"{prefix}association"] = plots.association_matrices(columns, accuracy["association"])
    out["distances"] = plots.distance_distributions(result["distances"]["histograms"])
    out["roc"] = plots.roc_curve(result["membership"]["roc"], result["membership"]["auc"])
    if result.get("utility"):
        out["importances"] = plots.importances(result["utility"]["importances"])
    if result.get("coherence"):
        hist = result["coherence"]["length_histograms"]
        out["lengths"] = plots.length_histograms(hist["real"], hist["synthetic"])
    return out


def summary_json(result: dict[str, Any]) -> dict[str, Any]:
    """The result without arrays (distances, ROC): what is saved beside the report."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items() if k not in ("histograms", "roc")}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    return clean(result)
