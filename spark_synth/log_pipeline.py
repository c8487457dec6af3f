"""Training on an event log: subjects (a flat model) first, then their event sequences in context."""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from spark_synth import dp, ownership, tracking
from spark_synth.config import UNLOGGED_SETTINGS, TrainConfig
from spark_synth.distributed import launch, threads_per_process
from spark_synth.encoding import TableCodec
from spark_synth.errors import SynthError
from spark_synth.evaluation.after_training import evaluate_after_training, should_evaluate
from spark_synth.generator import Generator
from spark_synth.log_generator import LogGenerator, denormalized
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.model.sequence import SequenceARGN, SequenceModelConfig
from spark_synth.sample_job import generate_log_dataframes
from spark_synth.schema import quoted
from spark_synth.sequences import LogSource, PreparedLog, prepare_log, read_log
from spark_synth.training.data import assign_buckets, split_counts
from spark_synth.training.loop import TrainResult, TrainSettings, auto_batch_size
from spark_synth.training.private import dp_batch_size
from spark_synth.training.rank import Phase, RankJob
from spark_synth.training_run import (
    PRIVATE_DROPOUT,
    SHARDS_PER_PROCESS,
    TrainOutcome,
    auto_hidden,
    check_target,
    start_training,
)
from spark_synth.workspace import Workspace

logger = logging.getLogger(__name__)

SUBJECT_TIME_SHARE = 0.3  # at most this share of the budget goes to the subject model (it usually stops early)
PRIVATE_SUBJECT_EPOCHS = 15  # under DP: every epoch of the subject model costs budget the events need
NOTHING_TO_LEARN = TrainResult(epochs=0, best_epoch=0, best_val_loss=None, train_loss=0.0, seconds=0.0,
                               stopped_by="no subject attributes")


def train_log(config: TrainConfig, spark: SparkSession) -> TrainOutcome:
    """Train an event-log generator and track it in MLflow; both sources are only read."""
    started = time.monotonic()
    tracking_uri = start_training(config)
    source = read_log(spark, config)
    check_target(config, [c for c in source.subjects.columns if c != config.subject_key], "the subject columns")
    workspace = Workspace(config)
    succeeded = False
    try:
        outcome = _train(config, spark, source, workspace, tracking_uri, started)
        succeeded = True
        return outcome
    finally:
        workspace.close(succeeded)


def _train(config: TrainConfig, spark: SparkSession, source: LogSource, workspace: Workspace, tracking_uri: str,
           started: float) -> TrainOutcome:
    processes = config.num_processes
    prepared = prepare_log(config, source, workspace, SHARDS_PER_PROCESS * processes if processes > 1 else 1)
    shards = assign_buckets(workspace.encoded_subjects, workspace.encoded_events, processes)
    subject_codec, event_codec = TableCodec(prepared.subject_stats), TableCodec(prepared.event_stats)
    n_train, n_val = split_counts([f for share in shards for f in share["subjects"]])
    n_events = sum(pq.ParquetFile(f).metadata.num_rows for share in shards for f in share["events"])
    if n_train == 0:
        raise SynthError("every subject fell into the validation split; too few subjects to train on.",
                         "Provide more subjects or lower validation_fraction.")

    release = prepared.release
    dropout = config.dropout if not release else min(config.dropout, PRIVATE_DROPOUT)
    # the unit: models are sized by subjects (under DP, by their noisy count)
    n_subjects = prepared.subject_stats["n_rows"] if release else n_train + n_val
    subject_config = ModelConfig(cardinalities=subject_codec.cardinalities, column_slices=subject_codec.column_slices,
                                 hidden=config.hidden or auto_hidden(n_subjects if release else n_train),
                                 dropout=dropout)
    event_config = ModelConfig(cardinalities=event_codec.cardinalities, column_slices=event_codec.column_slices,
                               hidden=config.hidden or auto_hidden(n_subjects), dropout=dropout)
    # under DP the state network has no dropout: exact per-sample norms then cost a second pass, not a loop
    sequence_config = SequenceModelConfig(subject_cardinalities=subject_codec.cardinalities, events=event_config,
                                          max_length=prepared.sequence["max_length"], dropout=0.0 if release else dropout)
    phases = _phases(config, prepared, subject_config, sequence_config, n_events, n_subjects)
    settings = _settings(config, max(config.max_minutes - (time.monotonic() - started) / 60, 0.2))

    params = _params(config, prepared, subject_config, event_config, n_train, n_val, n_events)
    with tracking.training_run(config.experiment, params) as run:
        job = RankJob(config.backend, shards, {"subjects": prepared.subject_fields, "events": prepared.event_fields},
                      phases, settings, workspace.rank_output(), workspace.fingerprint, workspace.checkpoints,
                      config.use_gpu, config.mixed_precision, threads_per_process(spark, config.backend), release,
                      {"max_length": prepared.sequence["max_length"], "window": config.window})
        trained = launch(spark, job, processes, on_epoch=lambda name: _log_epoch(f"{name}_"))
        subject_model, sequence_model = FlatARGN(subject_config), SequenceARGN(sequence_config)
        if "subjects" in trained.states:  # a key-only subject table has no subject model to train
            subject_model.load_state_dict(trained.states["subjects"])
        sequence_model.load_state_dict(trained.states["events"])
        subject_result = trained.results.get("subjects", NOTHING_TO_LEARN)
        event_result = trained.results["events"]
        privacy = None
        subject_model.forbid_codes(subject_codec.unreleased_codes())  # what the statistics did not publish
        sequence_model.events.forbid_codes(event_codec.unreleased_codes())  # is never generated
        if release:
            privacy = dp.privacy_report(release, [trained.private_steps[p.name] for p in phases])
        meta = {"seed": config.seed, "mlflow_run_id": run.info.run_id, "backend": config.backend,
                "num_processes": processes, "ranks": trained.ranks,
                **{f"subjects_{k}": v for k, v in _result_meta(subject_result).items()},
                **{f"events_{k}": v for k, v in _result_meta(event_result).items()}}
        if privacy:
            meta["privacy"] = privacy
            logger.info(dp.format_privacy(privacy))
        else:
            meta["orphan_events"] = prepared.orphan_events
        subjects = Generator(prepared.subject_stats, subject_config, subject_model.state_dict())
        generator = LogGenerator(subjects, prepared.event_stats, prepared.sequence, sequence_config,
                                 sequence_model.state_dict(), meta)
        staged = ownership.staging_for(config.model_dir)  # beside the model dir, swapped in once tracked
        try:
            generator.save(staged)
            metrics = {"subjects_epochs": float(subject_result.epochs), "events_epochs": float(event_result.epochs),
                       "train_seconds": subject_result.seconds + event_result.seconds,
                       "events_samples_per_second": trained.samples_per_second["events"],
                       "max_sequence_length": float(prepared.sequence["max_length"])}
            if privacy:
                metrics |= dp.privacy_metrics(privacy, [f"{p.name}_" for p in phases])
            else:
                metrics |= {f"{p.name}_best_val_loss": trained.results[p.name].best_val_loss for p in phases}
                metrics["orphan_events"] = float(prepared.orphan_events)
            quality = _evaluate(spark, generator, prepared, config, trained.validation_rows, privacy)
            metrics["total_seconds"] = time.monotonic() - started
            tracking.log_metrics(metrics)
            sample = denormalized(*generator.sample(5, seed=config.seed), generator.sequence)
            model_uri = tracking.log_generator(staged, sample, config.registered_model, config.alias)
            ownership.replace_dir(staged, config.model_dir)  # only now is a previous generator replaced
        finally:  # a generator not tracked is not delivered: the model dir keeps what it held
            ownership.discard(staged)
    return TrainOutcome(config.model_dir, run.info.run_id, model_uri, tracking_uri, metrics, quality)


def _phases(config: TrainConfig, prepared: PreparedLog, subject_config: ModelConfig,
            sequence_config: SequenceModelConfig, n_events: int, n_subjects: int) -> list[Phase]:
    """The subject model, then the sequence model in the time left. Under DP both share one noise; the
    subject model gets few epochs with small batches (a flat table learns fast), so most of the budget goes
    to the event sequences."""
    if not prepared.release:
        subjects = Phase("subjects", subject_config.to_dict(), SUBJECT_TIME_SHARE, config.batch_size,
                         config.max_epochs)
        events = Phase("events", sequence_config.to_dict(), None,
                       config.batch_size or subjects_per_batch(n_events, n_subjects), config.max_epochs)
    else:
        weights = prepared.length_weights or [0.0] + [1.0] * sequence_config.max_length
        window = min(len(weights) - 1, config.window)  # longer sequences train in windows: they cost a window
        weights = weights[:window] + [sum(weights[window:])]
        planned = dp.training_samples(n_subjects, config.validation_fraction)  # the noisy count under DP
        subjects = Phase("subjects", subject_config.to_dict(), SUBJECT_TIME_SHARE,
                         config.batch_size or max(64, dp_batch_size(planned, False) // 8),
                         min(config.max_epochs, PRIVATE_SUBJECT_EPOCHS), planned_samples=planned)
        events = Phase("events", sequence_config.to_dict(), None, config.batch_size, config.max_epochs, weights,
                       planned_samples=planned)
    # a key-only subject table has no subject model to train: the events are the whole model
    return [subjects, events] if subject_config.cardinalities else [events]


def subjects_per_batch(n_events: int, n_subjects: int) -> int:
    """Batches sized by their events (as flat tables size theirs by rows), in whole subjects."""
    mean_length = max(n_events / max(n_subjects, 1), 1.0)
    return int(max(16, 2 ** round(math.log2(max(auto_batch_size(n_events) / mean_length, 1)))))


def _settings(config: TrainConfig, minutes: float) -> TrainSettings:
    return TrainSettings(max_minutes=minutes, max_epochs=config.max_epochs, batch_size=config.batch_size,
                         learning_rate=config.learning_rate, patience=config.patience, seed=config.seed,
                         progress=config.progress)


def _log_epoch(prefix: str):
    def log(epoch: int, record: dict[str, float]) -> None:
        tracking.log_epoch(epoch, {f"{prefix}{k}": v for k, v in record.items() if k != "epoch"})

    return log


def _result_meta(result) -> dict[str, Any]:
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "stopped_by": result.stopped_by, "train_seconds": round(result.seconds, 1), "resumed_at": result.resumed_at}


def _params(config: TrainConfig, prepared: PreparedLog, subject_config: ModelConfig, event_config: ModelConfig,
            n_train: int, n_val: int, n_events: int) -> dict[str, Any]:
    params = config.model_dump(exclude={"data", "subjects", "events", "columns", *UNLOGGED_SETTINGS})
    params |= {"columns": json.dumps(config.model_dump()["columns"], sort_keys=True),
               "subjects": config.subjects if isinstance(config.subjects, str) else
               "derived from the events" if config.subjects is None else "DataFrame",
               "events": config.events if isinstance(config.events, str) else "DataFrame",
               "subject_hidden": subject_config.hidden, "event_hidden": event_config.hidden,
               "max_sequence_length_protected": prepared.sequence["max_length"]}
    if prepared.release:  # exact counts are data: under DP only the noisy subject count is logged
        params["subjects_noisy"] = prepared.subject_stats["n_rows"]
    else:
        params |= {"train_subjects": n_train, "validation_subjects": n_val, "events_used": n_events}
    return params


def _evaluate(spark: SparkSession, generator: LogGenerator, prepared: PreparedLog, config: TrainConfig,
              n_validation: int, privacy: dict | None) -> dict[str, float]:
    """The evaluation stage on fresh synthetic subjects with their events, as many as the validation split."""
    if not should_evaluate(config, n_validation):
        return {}
    seq = generator.sequence
    key, fk = seq["subject_key"], seq["foreign_key"]
    subject_columns = [key, *(c.name for c in generator.subjects.codec.modelled)]
    event_columns = [f.name for f in generator.event_schema]
    subjects, events = generate_log_dataframes(spark, generator, min(config.evaluation_rows, n_validation),
                                               seed=config.seed + 1)
    subjects, events = subjects.cache(), events.cache()  # generated once, then aggregated many times
    try:
        frames = {f"{side}_{part}": df.select(*map(quoted, columns)) for side, part, df, columns in (
            ("synthetic", "subjects", subjects, subject_columns), ("synthetic", "events", events, event_columns),
            ("training", "subjects", prepared.training_subjects, subject_columns),
            ("training", "events", prepared.training_events, event_columns),
            ("holdout", "subjects", prepared.validation_subjects, subject_columns),
            ("holdout", "events", prepared.validation_events, event_columns))}
        return evaluate_after_training(spark, config, frames, privacy, subject_key=key, foreign_key=fk,
                                       order_by=seq.get("order_by"))
    finally:
        subjects.unpersist()
        events.unpersist()
