"""Training on an event log: subjects (a flat model) first, then their event sequences in context."""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from spark_synth import tracking
from spark_synth.config import UNLOGGED_SETTINGS, TrainConfig
from spark_synth.encoding import TableCodec
from spark_synth.errors import SynthError
from spark_synth.evaluation.after_training import evaluate_after_training, should_evaluate
from spark_synth.generators.event_log import LogGenerator, denormalized
from spark_synth.generators.flat import FlatGenerator
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig
from spark_synth.privacy import plan as dp
from spark_synth.spark.launch import Trained, threads_per_process
from spark_synth.spark.sample_job import generate_tables
from spark_synth.spark.schema import quoted
from spark_synth.spark.sequences import PreparedLog, prepare_log, read_log
from spark_synth.spark.workspace import Workspace
from spark_synth.stages.training_run import (
    PRIVATE_DROPOUT,
    SHARDS_PER_PROCESS,
    auto_hidden,
    check_target,
    result_meta,
    schema_params,
    train_settings,
)
from spark_synth.tables import Schema
from spark_synth.training.data import assign_buckets, split_counts
from spark_synth.training.loop import TrainResult, auto_batch_size
from spark_synth.training.rank import Phase, RankJob, SequenceWindows

SUBJECT_TIME_SHARE = 0.3  # at most this share of the budget goes to the subject model (it usually stops early)
PRIVATE_SUBJECT_EPOCHS = 15  # under DP: every epoch of the subject model costs budget the events need
NOTHING_TO_LEARN = TrainResult(epochs=0, best_epoch=0, best_val_loss=None, train_loss=0.0, seconds=0.0,
                               stopped_by="no subject attributes")


class EventLogTraining:
    """An event log's part of a training (see :class:`ShapeTraining`): the subjects (a flat model, unless the
    subject table holds only its key), then their event sequences in context, in the time left."""

    def __init__(self, config: TrainConfig, schema: Schema, spark: SparkSession) -> None:
        self.config, self.schema, self.spark = config, schema, spark
        self.source = read_log(spark, schema, config)
        check_target(config, [c for c in self.source.subjects.columns if c != self.source.link.subject_key],
                     "the subject columns")

    def prepare(self, workspace: Workspace) -> None:
        config, processes = self.config, self.config.num_processes
        self.prepared = prepared = prepare_log(config, self.source, workspace,
                                               SHARDS_PER_PROCESS * processes if processes > 1 else 1)
        self.shards = assign_buckets(workspace.encoded_subjects, workspace.encoded_events, processes)
        self.subject_codec, self.event_codec = TableCodec(prepared.subject_stats), TableCodec(prepared.event_stats)
        self.n_train, self.n_val = split_counts([f for share in self.shards for f in share["subjects"]])
        self.n_events = sum(pq.ParquetFile(f).metadata.num_rows for share in self.shards for f in share["events"])
        if self.n_train == 0:
            raise SynthError("every subject fell into the validation split; too few subjects to train on.",
                             "Provide more subjects or lower validation_fraction.")
        self.release = release = prepared.release
        dropout = config.dropout if not release else min(config.dropout, PRIVATE_DROPOUT)
        # the unit: models are sized by subjects (under DP, by their noisy count)
        self.n_subjects = prepared.subject_stats.n_rows if release else self.n_train + self.n_val
        self.subject_config = ModelConfig(cardinalities=self.subject_codec.cardinalities,
                                          column_slices=self.subject_codec.column_slices,
                                          hidden=config.hidden or auto_hidden(self.n_subjects if release else self.n_train),
                                          dropout=dropout)
        self.event_config = ModelConfig(cardinalities=self.event_codec.cardinalities,
                                        column_slices=self.event_codec.column_slices,
                                        hidden=config.hidden or auto_hidden(self.n_subjects), dropout=dropout)
        # under DP the state network has no dropout: exact per-sample norms then cost a second pass, not a loop
        self.sequence_config = SequenceModelConfig(subject_cardinalities=self.subject_codec.cardinalities,
                                                   events=self.event_config, max_length=prepared.sequence.max_length,
                                                   dropout=0.0 if release else dropout)
        self.phases = _phases(config, prepared, self.subject_config, self.sequence_config, self.n_events,
                              self.n_subjects)
        self.phase_names = tuple(p.name for p in self.phases)
        self.metric_prefixes = tuple(f"{name}_" for name in self.phase_names)

    def params(self) -> dict[str, Any]:
        return _params(self.config, self.schema, self.prepared, self.subject_config, self.event_config, self.n_train,
                       self.n_val, self.n_events)

    def rank_job(self, workspace: Workspace, started: float) -> RankJob:
        config, prepared = self.config, self.prepared
        settings = train_settings(config, max(config.max_minutes - (time.monotonic() - started) / 60, 0.2))
        return RankJob(config.backend, self.shards, {"subjects": prepared.subject_fields, "events": prepared.event_fields},
                       self.phases, settings, workspace.rank_output(), workspace.fingerprint, workspace.checkpoints,
                       config.use_gpu, config.mixed_precision, threads_per_process(self.spark, config.backend),
                       self.release, SequenceWindows(prepared.sequence.max_length, config.window))

    def on_epoch(self, phase: str):
        def log(epoch: int, record: dict[str, float]) -> None:
            tracking.log_epoch(epoch, {f"{phase}_{k}": v for k, v in record.items() if k != "epoch"})

        return log

    def build(self, trained: Trained, meta: dict[str, Any]) -> LogGenerator:
        subject_model, sequence_model = FlatARGN(self.subject_config), SequenceARGN(self.sequence_config)
        if "subjects" in trained.states:  # a key-only subject table has no subject model to train
            subject_model.load_state_dict(trained.states["subjects"])
        sequence_model.load_state_dict(trained.states["events"])
        subject_model.forbid_codes(self.subject_codec.unreleased_codes())  # what the statistics did not publish
        sequence_model.events.forbid_codes(self.event_codec.unreleased_codes())  # is never generated
        subjects = FlatGenerator(self.prepared.subject_stats, self.subject_config, subject_model.state_dict())
        return LogGenerator(subjects, self.prepared.event_stats, self.prepared.sequence, self.sequence_config,
                            sequence_model.state_dict(), meta)

    def meta(self, trained: Trained) -> dict[str, Any]:
        meta = {f"{phase}_{k}": v for phase in ("subjects", "events")
                for k, v in result_meta(trained.results.get(phase, NOTHING_TO_LEARN)).items()}
        if not self.release:  # an exact count: published only without DP
            meta["orphan_events"] = self.prepared.orphan_events
        return meta

    def metrics(self, trained: Trained) -> dict[str, float]:
        subject_result = trained.results.get("subjects", NOTHING_TO_LEARN)
        event_result = trained.results["events"]
        metrics = {"subjects_epochs": float(subject_result.epochs), "events_epochs": float(event_result.epochs),
                   "train_seconds": subject_result.seconds + event_result.seconds,
                   "events_samples_per_second": trained.samples_per_second["events"],
                   "max_sequence_length": float(self.prepared.sequence.max_length)}
        if not self.release:
            metrics |= {f"{name}_best_val_loss": trained.results[name].best_val_loss for name in self.phase_names}
            metrics["orphan_events"] = float(self.prepared.orphan_events)
        return metrics

    def evaluate(self, generator: LogGenerator, n_validation: int, privacy: dict | None) -> dict[str, float]:
        """The evaluation stage on fresh synthetic subjects with their events, as many as the validation split."""
        config, prepared = self.config, self.prepared
        if not should_evaluate(config, n_validation):
            return {}
        seq = generator.sequence
        key, fk = seq.subject_key, seq.foreign_key
        subject_columns = [key, *(c.name for c in generator.subjects.codec.modelled)]
        event_columns = [f.name for f in generator.event_schema]
        subjects, events = generate_tables(self.spark, generator, min(config.evaluation_rows, n_validation),
                                           seed=config.seed + 1).values()
        subjects, events = subjects.cache(), events.cache()  # generated once, then aggregated many times
        try:
            frames = {f"{side}_{part}": df.select(*map(quoted, columns)) for side, part, df, columns in (
                ("synthetic", "subjects", subjects, subject_columns), ("synthetic", "events", events, event_columns),
                ("training", "subjects", prepared.training_subjects, subject_columns),
                ("training", "events", prepared.training_events, event_columns),
                ("holdout", "subjects", prepared.validation_subjects, subject_columns),
                ("holdout", "events", prepared.validation_events, event_columns))}
            return evaluate_after_training(self.spark, config, frames, privacy, subject_key=key, foreign_key=fk,
                                           order_by=seq.order_by)
        finally:
            subjects.unpersist()
            events.unpersist()

    def preview(self, generator: LogGenerator) -> pd.DataFrame:
        return denormalized(*generator.sample(5, seed=self.config.seed), generator.sequence)


def _phases(config: TrainConfig, prepared: PreparedLog, subject_config: ModelConfig,
            sequence_config: SequenceModelConfig, n_events: int, n_subjects: int) -> list[Phase]:
    """The subject model, then the sequence model in the time left. Under DP both share one noise; the
    subject model gets few epochs with small batches (a flat table learns fast), so most of the budget goes
    to the event sequences."""
    if not prepared.release:
        subjects = Phase("subjects", subject_config.to_dict(), SUBJECT_TIME_SHARE, config.batch_size,
                         config.max_epochs)
        events = Phase("events", sequence_config.to_dict(), None,
                       config.batch_size or subjects_per_batch(n_events, n_subjects), config.max_epochs,
                       length_prior=prepared.length_weights)
    else:
        planned = dp.training_samples(n_subjects, config.validation_fraction)  # the noisy count under DP
        subjects = Phase("subjects", subject_config.to_dict(), SUBJECT_TIME_SHARE,
                         config.batch_size or max(64, dp.dp_batch_size(planned, False) // 8),
                         min(config.max_epochs, PRIVATE_SUBJECT_EPOCHS), planned_samples=planned)
        events = Phase("events", sequence_config.to_dict(), None, config.batch_size, config.max_epochs,
                       planned_samples=planned, length_prior=prepared.length_weights)
    # a key-only subject table has no subject model to train: the events are the whole model
    return [subjects, events] if subject_config.cardinalities else [events]


def subjects_per_batch(n_events: int, n_subjects: int) -> int:
    """Batches sized by their events (as flat tables size theirs by rows), in whole subjects."""
    mean_length = max(n_events / max(n_subjects, 1), 1.0)
    return int(max(16, 2 ** round(math.log2(max(auto_batch_size(n_events) / mean_length, 1)))))


def _params(config: TrainConfig, schema: Schema, prepared: PreparedLog, subject_config: ModelConfig,
            event_config: ModelConfig, n_train: int, n_val: int, n_events: int) -> dict[str, Any]:
    params = config.model_dump(exclude={"data", "tables", "subjects", "events", "columns", *UNLOGGED_SETTINGS})
    params |= {**schema_params(schema), "subjects": schema.subjects.source_name, "events": schema.events.source_name,
               "subject_hidden": subject_config.hidden, "event_hidden": event_config.hidden,
               "max_sequence_length_protected": prepared.sequence.max_length}
    if prepared.release:  # exact counts are data: under DP only the noisy subject count is logged
        params["subjects_noisy"] = prepared.subject_stats.n_rows
    else:
        params |= {"train_subjects": n_train, "validation_subjects": n_val, "events_used": n_events}
    return params
