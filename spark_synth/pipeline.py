"""The stages wired together: train (read, split, analyze, encode, fit, save, log) and generate."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_synth import dp, ownership, tracking
from spark_synth.analyze import analyze, validated_overview
from spark_synth.config import UNLOGGED_SETTINGS, GenerateConfig, ImputeConfig, TrainConfig
from spark_synth.distributed import check_backend, launch, threads_per_process
from spark_synth.encode import encode_to_shards, shard_layout
from spark_synth.encoding import TableCodec
from spark_synth.encoding.packing import Field
from spark_synth.errors import JobFailed, SynthError, spark_job_failure, synth_error_in_task
from spark_synth.evaluation.after_training import evaluate_after_training, should_evaluate
from spark_synth.generator import DEVICE_SUB_BATCH, Generator
from spark_synth.io import (
    delete_output,
    delete_path,
    output_exists,
    read_table,
    write_table,
    write_tables_together,
)
from spark_synth.log_generator import LogGenerator
from spark_synth.log_pipeline import train_log
from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.normalize import (
    normalize,
    private_text_date_formats,
    saved_text_formats,
    text_date_candidates,
)
from spark_synth.private_stats import private_statistics
from spark_synth.resources import check_chunk_fits
from spark_synth.sample_job import (
    generate_dataframe,
    generate_log_dataframes,
    generate_seeded_dataframe,
    generate_seeded_log_dataframes,
    impute_dataframe,
)
from spark_synth.schema import plan_columns, quoted
from spark_synth.spark import session_for
from spark_synth.split import with_split
from spark_synth.training.data import SPLIT_COLUMN, assign_shards, shard_files, split_counts
from spark_synth.training.loop import TrainSettings
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

FLAT_CHUNK = 100_000  # rows per chunk of a flat table
LOG_CHUNK = 10_240  # subjects per chunk of an event log (~10 events each): whole sampler sub-batches
# on a GPU: whole device sub-batches, enough of them to keep the device busy between decodes
GPU_FLAT_CHUNK = 16 * DEVICE_SUB_BATCH
GPU_LOG_CHUNK = DEVICE_SUB_BATCH
DEFAULT_CHUNKS = {("rows", "cpu"): FLAT_CHUNK, ("subjects", "cpu"): LOG_CHUNK,
                  ("rows", "cuda"): GPU_FLAT_CHUNK, ("subjects", "cuda"): GPU_LOG_CHUNK}


def train(config: TrainConfig, spark: SparkSession | None = None) -> TrainOutcome:
    """Train a generator on ``config.data`` (or an event log) and track it in MLflow; the source is only read."""
    spark = spark or session_for(config)
    check_backend(spark, config.backend, config.num_processes, config.use_gpu)
    if config.is_log:
        return train_log(config, spark)
    started = time.monotonic()
    tracking_uri = start_training(config)
    workspace = Workspace(config)
    succeeded = False
    try:
        outcome = _train_flat(config, spark, workspace, tracking_uri, started)
        succeeded = True
        return outcome
    finally:
        workspace.close(succeeded)


def _train_flat(config: TrainConfig, spark: SparkSession, workspace: Workspace, tracking_uri: str,
                started: float) -> TrainOutcome:
    prepared = _prepare(config, spark, workspace)
    codec, release = prepared.codec, prepared.release
    # under DP, sizes come from the noisy row count and every code the statistics released stays allowed
    n_rows = prepared.stats["n_rows"] if release else prepared.train_rows
    model_config = ModelConfig(cardinalities=codec.cardinalities, column_slices=codec.column_slices,
                               hidden=config.hidden or auto_hidden(n_rows),
                               dropout=config.dropout if not release else min(config.dropout, PRIVATE_DROPOUT))
    settings = TrainSettings(max_minutes=config.max_minutes, max_epochs=config.max_epochs,
                             batch_size=config.batch_size, learning_rate=config.learning_rate,
                             patience=config.patience, seed=config.seed, progress=config.progress)
    params = config.model_dump(exclude={"data", "columns", "checkpoint_dir", "work_dir", *UNLOGGED_SETTINGS})
    params |= {"columns": json.dumps(config.model_dump()["columns"], sort_keys=True),
               "data": config.data if isinstance(config.data, str) else "DataFrame",
               "n_columns": len(codec.modelled), "n_sub_columns": len(codec.sub_columns), "hidden": model_config.hidden}
    params |= {"rows_noisy": n_rows} if release else {"train_rows": prepared.train_rows,
                                                      "validation_rows": prepared.validation_rows}
    with tracking.training_run(config.experiment, params) as run:
        planned = dp.training_samples(n_rows, config.validation_fraction) if release else None
        phase = Phase("model", model_config.to_dict(), None, config.batch_size, config.max_epochs,
                      planned_samples=planned)
        job = RankJob(config.backend, assign_shards(prepared.files, config.num_processes), {"rows": prepared.fields},
                      [phase], settings, workspace.rank_output(), workspace.fingerprint, workspace.checkpoints,
                      config.use_gpu, config.mixed_precision, threads_per_process(spark, config.backend), release)
        trained = launch(spark, job, config.num_processes, on_epoch=lambda _: tracking.log_epoch)
        model = FlatARGN(model_config)
        model.load_state_dict(trained.states["model"])
        result, privacy = trained.results["model"], None
        model.forbid_codes(codec.unreleased_codes())  # what the statistics did not publish is never generated
        if release:
            privacy = dp.privacy_report(release, [trained.private_steps["model"]])
        meta = {"seed": config.seed, "epochs": result.epochs, "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss, "stopped_by": result.stopped_by,
                "train_seconds": round(result.seconds, 1), "mlflow_run_id": run.info.run_id,
                "backend": config.backend, "num_processes": config.num_processes,
                "resumed_at": result.resumed_at, "samples_per_second": round(trained.samples_per_second["model"], 1),
                "ranks": trained.ranks}
        if privacy:
            meta["privacy"] = privacy
            logger.info(dp.format_privacy(privacy))
        generator = Generator(prepared.stats, model_config, model.state_dict(), meta)
        staged = ownership.staging_for(config.model_dir)  # beside the model dir, swapped in once tracked
        try:
            generator.save(staged)
            metrics = {"epochs": float(result.epochs), "train_seconds": result.seconds,
                       "samples_per_second": trained.samples_per_second["model"]}
            if privacy:
                metrics |= dp.privacy_metrics(privacy, [""])
            else:
                metrics |= {"best_epoch": float(result.best_epoch), "best_val_loss": result.best_val_loss}
            quality = _evaluate(spark, generator, prepared, config, trained.validation_rows, privacy)
            metrics["total_seconds"] = time.monotonic() - started
            tracking.log_metrics(metrics)
            model_uri = tracking.log_generator(staged, generator.sample(5, seed=config.seed),
                                               config.registered_model, config.alias)
            ownership.replace_dir(staged, config.model_dir)  # only now is a previous generator replaced
        finally:  # a generator not tracked is not delivered: the model dir keeps what it held
            ownership.discard(staged)
    return TrainOutcome(config.model_dir, run.info.run_id, model_uri, tracking_uri, metrics, quality)


@dataclass
class _Prepared:
    stats: dict[str, Any]
    codec: TableCodec
    training: DataFrame
    validation: DataFrame
    files: list[str]  # the encoded shards, split among the ranks
    fields: list[Field]  # where the codes lie in the shards
    train_rows: int
    validation_rows: int
    release: dp.StatsRelease | None = None  # the DP statistics release, when training under a budget


def _prepare(config: TrainConfig, spark: SparkSession, workspace: Workspace) -> _Prepared:
    """Read, plan, analyze (protected stats), split and encode to shards in the workspace.

    A resumed training reuses the statistics it saved: under DP they are released once.
    """
    budget = dp.budget_for(config) if config.private else None  # checked before any work
    source = read_table(spark, config.data, config.format)
    plans = plan_columns(source.schema, config.columns)
    date_tests = len(text_date_candidates(plans))
    stats = workspace.saved_stats()
    if stats is not None:  # a resumed training: the text-date decisions (under DP released once) as saved
        formats = saved_text_formats(stats["columns"])
    elif budget:
        formats = private_text_date_formats(source, plans, dp.text_date_noise_std(date_tests))
    else:
        formats = None
    df, plans = normalize(source, plans, formats=formats)
    check_target(config, [p.name for p in plans], "the table's modelled columns")
    source_name = config.data if isinstance(config.data, str) else "the input DataFrame"
    release = dp.plan_statistics(budget, [plans], text_date_columns=date_tests) if budget else None
    if stats is None:
        if release:  # the exact row count goes into its noisy release, and nowhere else
            n_rows, _ = validated_overview(df, plans, source_name)
            stats = private_statistics(df, plans, release.noise_std, release.threshold,
                                       release.noisy_count(n_rows, "rows"))
        else:
            stats = analyze(df, plans, source_name)
        stats["excluded"] = [c for c in source.columns if c not in {p.name for p in plans}]
        workspace.save_stats(stats)
    codec = TableCodec(stats)
    if not codec.sub_columns:
        raise SynthError(f"every column of {source_name} looks like an identifier (unique per row), so there is "
                         "nothing to learn.", "Give the columns an explicit encoding (e.g. `encoding: categorical`) "
                         "or add attribute columns.")
    split = with_split(df, config.seed, config.validation_fraction)
    if workspace.has_encoded:
        fields = shard_layout(codec)
    else:  # several ranks need several shards each: spread the rows evenly first
        rows = split.repartition(SHARDS_PER_PROCESS * config.num_processes) if config.num_processes > 1 else split
        fields = encode_to_shards(rows, stats, workspace.encoded)
    files = shard_files(workspace.encoded)
    train_rows, validation_rows = split_counts(files)
    if train_rows == 0:
        raise SynthError("every row fell into the validation split; the table is too small to train on.",
                         "Provide more rows or lower validation_fraction.")
    validation = split.where(F.col(SPLIT_COLUMN)).drop(SPLIT_COLUMN)
    training = split.where(~F.col(SPLIT_COLUMN)).drop(SPLIT_COLUMN)
    return _Prepared(stats, codec, training, validation, files, fields, train_rows, validation_rows, release)


def _evaluate(spark: SparkSession, generator: Generator, prepared: _Prepared, config: TrainConfig,
              n_validation: int, privacy: dict | None) -> dict[str, float]:
    """The evaluation stage on fresh synthetic rows, as many as the validation split (up to quality_rows)."""
    if not should_evaluate(config, n_validation):
        return {}
    columns = [c.name for c in generator.codec.modelled]
    synthetic = generate_dataframe(spark, generator, min(config.evaluation_rows, n_validation),
                                   seed=config.seed + 1).select(*map(quoted, columns)).cache()  # generated once
    try:
        frames = {"synthetic": synthetic, "training": prepared.training.select(*map(quoted, columns)),
                  "holdout": prepared.validation.select(*map(quoted, columns))}
        return evaluate_after_training(spark, config, frames, privacy)
    finally:
        synthetic.unpersist()


def generate(config: GenerateConfig, spark: SparkSession | None = None) -> int:
    """Write ``config.rows`` synthetic rows (or ``config.subjects`` subjects with their events, to
    ``OUTPUT/subjects`` and ``OUTPUT/events``, or one row per row of ``config.seed_data``) to ``config.output``;
    returns the number of rows or subjects."""
    _check_output_apart(config.output, config.format, [("--model", config.model), ("--seed-data", config.seed_data),
                                                       ("--seed-events", config.seed_events)])
    generator = tracking.load_generator(config.model, config.tracking_uri)
    controls = config.controls()
    is_log = isinstance(generator, LogGenerator)
    if is_log and config.rows is not None:
        raise SynthError(f"{config.model} is an event-log generator: it generates subjects with their events.",
                         "Pass --subjects N (or --seed-data) instead of --rows.")
    if is_log:
        generator.check_controls(controls)
    if not is_log and config.subjects is not None:
        raise SynthError(f"{config.model} is a flat-table generator.", "Pass --rows N (or --seed-data) instead.")
    if not is_log and config.seed_events is not None:
        raise SynthError(f"{config.model} is a flat-table generator; seed events begin the events of an event log.",
                         "Leave out --seed-events (the seed rows alone condition a flat table).")
    chunk = config.chunk_size or DEFAULT_CHUNKS["subjects" if is_log else "rows", config.device]
    if config.seed_data is None:
        check_chunk_fits(generator, chunk, config.max_task_memory_mb, "--chunk-size")
    spark = spark or session_for(config)
    tracking.configure(config.tracking_uri, config.registry_uri)
    targets = [config.output] if not is_log else _log_outputs(config.output, config.format)
    taken = targets if config.format == "table" else [config.output]  # an event log's files share one folder
    if config.mode == "error" and any(output_exists(spark, t, config.format) for t in taken):
        raise SynthError(f"output {config.output} already exists.", "Choose a new --output or pass --mode overwrite.")
    count = config.rows or config.subjects
    if config.seed_data is not None:
        seed_data = read_table(spark, config.seed_data)
        count = seed_data.count()
        if count == 0:
            raise SynthError("the seed table has no rows.", "Pass a seed with one row per synthetic row wanted.")
    if not is_log:
        if config.seed_data is not None:
            df = generate_seeded_dataframe(spark, generator, seed_data, config.seed, controls, config.device)
        else:
            df = generate_dataframe(spark, generator, config.rows, config.seed, chunk, config.partitions, controls,
                                    config.device)
        with _failing_job_explained(config.output, whole=True):
            write_table(df, config.output, config.format, config.mode, config.partition_by)  # atomic: all or nothing
        return count
    if config.seed_data is not None:
        seed_events = None
        if config.seed_events is not None:
            seed_events = read_table(spark, config.seed_events)
            if seed_events.isEmpty():
                raise SynthError("the seed events table has no rows.",
                                 "Pass seed events, or leave out --seed-events to generate every event.")
        subjects, events = generate_seeded_log_dataframes(spark, generator, seed_data, config.seed, controls,
                                                          seed_events, config.device)
    else:
        subjects, events = generate_log_dataframes(spark, generator, config.subjects, config.seed, chunk,
                                                   config.partitions, controls, config.device)
    subject_target, event_target = targets
    unknown = [c for c in config.partition_by or () if c not in subjects.columns + events.columns]
    if unknown:
        raise SynthError(f"partition column(s) {unknown} are in neither generated table.",
                         f"Partition by subject or event columns: {subjects.columns + events.columns}.")
    together = config.format in ("parquet", "csv") and config.mode != "append"  # the pair replaced in one rename
    with _failing_job_explained(config.output, whole=together or config.mode == "error"):
        if together:
            write_tables_together({"subjects": (subjects, _partitions(config.partition_by, subjects)),
                                   "events": (events, _partitions(config.partition_by, events))},
                                  config.output, config.format, config.mode)
            return count
        write_table(subjects, subject_target, config.format, config.mode, _partitions(config.partition_by, subjects))
        try:
            write_table(events, event_target, config.format, config.mode, _partitions(config.partition_by, events))
        except BaseException:
            if config.mode != "append":  # the pair is delivered whole or not at all
                if config.mode == "error" and config.format != "table":
                    delete_path(spark, config.output)
                else:
                    delete_output(spark, subject_target, config.format)
            raise
    return count


def _check_output_apart(output: str, fmt: str, reads: list[tuple[str, Any]]) -> None:
    """An output written in any mode (replaced, appended to, or created with Spark's temporary files inside)
    must not be, hold or sit inside the generator or an input read: refused before any work. Catalog tables
    and models:/ URIs are not paths and are not compared."""
    if fmt == "table":
        return
    paths = [(name, value) for name, value in reads if not ownership.maybe_table_name(value)
             and (name != "--model" or ownership.is_local(value))]
    ownership.check_apart([("--output", output)], paths, "Choose an --output apart from the model and the input "
                                                        "data (neither the same place nor one inside another).")


@contextmanager
def _failing_job_explained(output: str, whole: bool) -> Iterator[None]:
    """A Spark job that fails for good while writing becomes an error naming the task and saying what became of
    the output: as it was when written ``whole`` (staged and renamed, or new and removed on failure); else an
    event log committed a table at a time (Delta, catalog tables, appends) may have lost or gained its subjects."""
    try:
        yield
    except SynthError:
        raise
    except Exception as exc:
        refused = synth_error_in_task(exc)  # e.g. no GPU in a task of --device cuda: the task's own reason
        if refused is not None:
            raise refused from exc
        failure = spark_job_failure(exc)
        if failure is None:
            raise
        outcome = (f"Nothing was written: {output} is unchanged." if whole else
                   f"{output} is written a table at a time: its subjects table may have been replaced or appended "
                   "to without events.")
        raise JobFailed(f"generation failed: {failure}. {outcome}",
                        "See the failed task's log in the Spark UI; a transient loss is retried "
                        "spark.task.maxFailures times (a local[N] master never retries: use local[N,F]).") from exc


def _log_outputs(output: str, fmt: str) -> list[str]:
    """Where an event log's two tables go: OUTPUT/subjects and OUTPUT/events, or tables OUTPUT_subjects and
    OUTPUT_events."""
    if fmt == "table":
        return [f"{output}_subjects", f"{output}_events"]
    return [os.path.join(output, name) for name in ("subjects", "events")]


def _partitions(partition_by: list[str] | None, df: DataFrame) -> list[str] | None:
    """An event log partitions each of its tables by the columns it has."""
    if not partition_by:
        return None
    return [c for c in partition_by if c in df.columns] or None


def impute(config: ImputeConfig, spark: SparkSession | None = None) -> None:
    """Write ``config.data`` with the nulls of ``config.columns`` filled to ``config.output``; the source is
    only read, and its present values come out unchanged."""
    _check_output_apart(config.output, config.format,
                        [("--model", config.model), ("--data", None if config.data_format == "table" else config.data)])
    generator = tracking.load_generator(config.model, config.tracking_uri)
    if isinstance(generator, LogGenerator):
        raise SynthError(f"{config.model} is an event-log generator; imputation fills flat tables.",
                         "Pass a flat-table generator.")
    controls = config.controls()
    spark = spark or session_for(config)
    if config.mode == "error" and output_exists(spark, config.output, config.format):
        raise SynthError(f"output {config.output} already exists.", "Choose a new --output or pass --mode overwrite.")
    data = read_table(spark, config.data, config.data_format)
    df = impute_dataframe(spark, generator, data, config.columns, config.seed, controls)
    write_table(df, config.output, config.format, config.mode, config.partition_by)
