"""The generation stages: generate (rows, or subjects with their events) and impute, written atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from spark_synth import ownership, tracking
from spark_synth.config import GenerateConfig, ImputeConfig
from spark_synth.errors import JobFailed, SynthError, spark_job_failure, synth_error_in_task
from spark_synth.generators.kinds import Generator
from spark_synth.resources import check_chunk_fits
from spark_synth.spark.io import (
    delete_output,
    delete_path,
    output_exists,
    read_table,
    write_table,
    write_tables_together,
)
from spark_synth.spark.sample_job import (
    DEFAULT_CHUNKS,
    generate_seeded_tables,
    generate_tables,
    impute_dataframe,
)
from spark_synth.spark.session import session_for


def generate(config: GenerateConfig, spark: SparkSession | None = None) -> int:
    """Write ``config.rows`` synthetic rows (or ``config.subjects`` subjects with their events, to
    ``OUTPUT/subjects`` and ``OUTPUT/events``, or one per row of ``config.seed_data``) to ``config.output``;
    returns the number of rows or subjects."""
    _check_output_apart(config.output, config.format, [("--model", config.model), ("--seed-data", config.seed_data),
                                                       ("--seed-events", config.seed_events)])
    generator = tracking.load_generator(config.model, config.tracking_uri)
    count = _requested(generator, config)
    controls = generator.check_controls(config.controls())
    chunk = config.chunk_size or DEFAULT_CHUNKS[generator.unit, config.device]
    if config.seed_data is None:
        check_chunk_fits(generator, chunk, config.max_task_memory_mb, "--chunk-size")
    spark = spark or session_for(config)
    tracking.configure(config.tracking_uri, config.registry_uri)
    targets = _output_targets(config.output, config.format, generator.outputs)
    taken = list(targets.values()) if config.format == "table" else [config.output]  # several tables share a folder
    if config.mode == "error" and any(output_exists(spark, t, config.format) for t in taken):
        raise SynthError(f"output {config.output} already exists.", "Choose a new --output or pass --mode overwrite.")
    if config.seed_data is None:
        tables = generate_tables(spark, generator, count, config.seed, chunk, config.partitions, controls,
                                 config.device)
    else:
        seed_data = read_table(spark, config.seed_data)
        count = seed_data.count()
        if count == 0:
            raise SynthError("the seed table has no rows.", "Pass a seed with one row per synthetic row wanted.")
        seed_events = None
        if config.seed_events is not None:
            seed_events = read_table(spark, config.seed_events)
            if seed_events.isEmpty():
                raise SynthError("the seed events table has no rows.",
                                 "Pass seed events, or leave out --seed-events to generate every event.")
        tables = generate_seeded_tables(spark, generator, seed_data, config.seed, controls, seed_events, config.device)
    if len(tables) == 1:
        with _failing_job_explained(config.output, whole=True):  # atomic: all or nothing
            write_table(*tables.values(), config.output, config.format, config.mode, config.partition_by)
    else:
        _write_several(spark, tables, targets, config)
    return count


def _requested(generator: Generator, config: GenerateConfig) -> int:
    """How many units the request asks for (the seed's rows are counted later), refused where the generator
    makes the other kind of unit."""
    if generator.unit == "subjects" and config.rows is not None:
        raise SynthError(f"{config.model} is an event-log generator: it generates subjects with their events.",
                         "Pass --subjects N (or --seed-data) instead of --rows.")
    if generator.unit == "rows" and config.subjects is not None:
        raise SynthError(f"{config.model} is a flat-table generator.", "Pass --rows N (or --seed-data) instead.")
    if generator.unit == "rows" and config.seed_events is not None:
        raise SynthError(f"{config.model} is a flat-table generator; seed events begin the events of an event log.",
                         "Leave out --seed-events (the seed rows alone condition a flat table).")
    return config.rows or config.subjects or 0


def _output_targets(output: str, fmt: str, outputs: tuple[str, ...]) -> dict[str, str]:
    """Where each output table goes: one table to OUTPUT itself; several to OUTPUT/NAME (paths) or to tables
    OUTPUT_NAME (catalog)."""
    if len(outputs) == 1:
        return {outputs[0]: output}
    if fmt == "table":
        return {name: f"{output}_{name}" for name in outputs}
    return {name: os.path.join(output, name) for name in outputs}


def _write_several(spark: SparkSession, tables: dict[str, DataFrame], targets: dict[str, str],
                   config: GenerateConfig) -> None:
    """Several related tables, delivered whole: replaced in one rename as paths (Parquet, CSV), else written a
    table at a time and the ones already written removed again when a later one fails."""
    columns = [c for df in tables.values() for c in df.columns]
    unknown = [c for c in config.partition_by or () if c not in columns]
    if unknown:
        raise SynthError(f"partition column(s) {unknown} are in none of the generated tables.",
                         f"Partition by columns of the generated tables: {columns}.")
    parts = {name: _partitions(config.partition_by, df) for name, df in tables.items()}
    together = config.format in ("parquet", "csv") and config.mode != "append"
    with _failing_job_explained(config.output, whole=together or config.mode == "error"):
        if together:
            write_tables_together({name: (df, parts[name]) for name, df in tables.items()}, config.output,
                                  config.format, config.mode)
            return
        written = []
        try:
            for name, df in tables.items():
                write_table(df, targets[name], config.format, config.mode, parts[name])
                written.append(name)
        except BaseException:
            if config.mode != "append":  # the tables are delivered whole or not at all
                if config.mode == "error" and config.format != "table":
                    delete_path(spark, config.output)
                else:
                    for name in written:
                        delete_output(spark, targets[name], config.format)
            raise


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
                   f"{output} is written a table at a time: its first tables (an event log's subjects) may have been "
                   "replaced or appended to without the rest.")
        raise JobFailed(f"generation failed: {failure}. {outcome}",
                        "See the failed task's log in the Spark UI; a transient loss is retried "
                        "spark.task.maxFailures times (a local[N] master never retries: use local[N,F]).") from exc


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
    if generator.unit != "rows":
        raise SynthError(f"{config.model} is an event-log generator; imputation fills flat tables.",
                         "Pass a flat-table generator.")
    controls = config.controls()
    spark = spark or session_for(config)
    if config.mode == "error" and output_exists(spark, config.output, config.format):
        raise SynthError(f"output {config.output} already exists.", "Choose a new --output or pass --mode overwrite.")
    data = read_table(spark, config.data, config.data_format)
    df = impute_dataframe(spark, generator, data, config.columns, config.seed, controls)
    write_table(df, config.output, config.format, config.mode, config.partition_by)
