"""Chunked generation on Spark: ``spark.range(n_chunks).mapInArrow(...)``.

A chunk is a fixed number of rows; its content depends only on (generator, seed, chunk id, chunk
size). Partitioning only decides which task computes which chunks, so the table is the same for
any partition count, and a retried task rewrites exactly the same rows. With ``device="cuda"`` each
task samples on its GPU (:meth:`FlatGenerator.to`): the content then also depends on the device type.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_synth.errors import SynthError
from spark_synth.faults import maybe_kill_task
from spark_synth.generators.controls import Controls
from spark_synth.generators.event_log import LogGenerator
from spark_synth.generators.flat import DEVICE_SUB_BATCH, FlatGenerator
from spark_synth.generators.kinds import Generator, from_payload
from spark_synth.generators.log_seed import SEED_EVENT_ID, SEED_EVENTS, require_link, seed_event_columns
from spark_synth.spark.schema import quoted
from spark_synth.spark.session import is_connect

_WORKER_CACHE: dict[str, Generator] = {}
ROW_ID = "__spark_synth_row"  # an input row's id, naming its batch's random stream
FLAT_CHUNK = 100_000  # rows per chunk of a flat table
LOG_CHUNK = 10_240  # subjects per chunk of an event log (~10 events each): whole sampler sub-batches
# on a GPU: whole device sub-batches, enough of them to keep the device busy between decodes
GPU_FLAT_CHUNK = 16 * DEVICE_SUB_BATCH
GPU_LOG_CHUNK = DEVICE_SUB_BATCH
DEFAULT_CHUNKS = {("rows", "cpu"): FLAT_CHUNK, ("subjects", "cpu"): LOG_CHUNK,
                  ("rows", "cuda"): GPU_FLAT_CHUNK, ("subjects", "cuda"): GPU_LOG_CHUNK}


def spark_schema(generator: Generator, output: str | None = None) -> str:
    """DDL of an output table (the first by default): the original column names and Spark types."""
    types = generator.output_types[output or generator.outputs[0]]
    return ", ".join(f"{quoted(name)} {kind}" for name, kind in types.items())


def generate_tables(spark: SparkSession, generator: Generator, count: int, seed: int = 0,
                    chunk_size: int | None = None, partitions: int | None = None, controls: Controls | None = None,
                    device: str = "cpu") -> dict[str, DataFrame]:
    """Lazy DataFrames, one per output table, for ``count`` units (rows of a flat table, subjects of an event
    log) in chunks of ``chunk_size`` units (by default ``DEFAULT_CHUNKS`` for the unit and device); nothing runs
    until they are written or aggregated. The tables' jobs replay the same chunks, so an event log's events
    belong to its subjects without a join."""
    chunk_size = chunk_size or DEFAULT_CHUNKS[generator.unit, device]
    controls = generator.check_controls(controls)  # refused here, not in a task
    return {output: _chunked(spark, generator, output, spark_schema(generator, output), count, seed, chunk_size,
                             partitions, controls, device) for output in generator.outputs}


def generate_seeded_tables(spark: SparkSession, generator: Generator, seed_data: DataFrame, seed: int = 0,
                           controls: Controls | None = None, seed_events: DataFrame | None = None,
                           device: str = "cpu") -> dict[str, DataFrame]:
    """Lazy DataFrames, one per output table: one unit per row of ``seed_data``, its columns kept and the others
    generated given them; for an event log, ``seed_events`` (linked by the subject key) begin each subject's events.

    Each Arrow batch draws from generators seeded by (seed, its first row's id), so the output is reproducible for
    the same input and partitioning, and every table's job redraws the same units from the same batches.
    """
    if seed_events is not None:
        seed_data = _with_seed_events(generator, seed_data, seed_events)
    controls = generator.check_controls(controls, generator.seed_columns(seed_data.columns))

    def seeded(output: str):
        def run(worker: Generator, batch: pa.RecordBatch, first: int) -> pa.RecordBatch:
            return worker.sample_seeded_batch(output, batch, seed, first, first, controls)
        return run

    return {output: _per_batch(spark, generator, seed_data, seeded(output), spark_schema(generator, output), device)
            for output in generator.outputs}


def generate_dataframe(spark: SparkSession, generator: FlatGenerator, rows: int, seed: int = 0,
                       chunk_size: int | None = None, partitions: int | None = None, controls: Controls | None = None,
                       device: str = "cpu") -> DataFrame:
    """A lazy DataFrame of ``rows`` synthetic rows of a flat generator."""
    return generate_tables(spark, generator, rows, seed, chunk_size, partitions, controls, device)["rows"]


def generate_seeded_dataframe(spark: SparkSession, generator: FlatGenerator, seed_data: DataFrame, seed: int = 0,
                              controls: Controls | None = None, device: str = "cpu") -> DataFrame:
    """One synthetic row per row of ``seed_data`` (lazy): its columns kept, the others generated given them."""
    return generate_seeded_tables(spark, generator, seed_data, seed, controls, device=device)["rows"]


def impute_dataframe(spark: SparkSession, generator: FlatGenerator, data: DataFrame, columns: list[str], seed: int = 0,
                     controls: Controls | None = None) -> DataFrame:
    """``data`` with the nulls of ``columns`` filled by the generator (lazy); present values are kept."""
    generator.check_imputation(data.columns, columns)
    controls = generator.check_controls(controls)

    def imputed(worker: FlatGenerator, batch: pa.RecordBatch, first: int) -> pa.RecordBatch:
        return worker.impute_batch(batch, columns, seed, first, controls)

    return _per_batch(spark, generator, data, imputed, data.schema)


def _with_seed_events(generator: LogGenerator, subjects: DataFrame, events: DataFrame) -> DataFrame:
    """Seed subjects with their seed events nested in :data:`SEED_EVENTS` (key dropped), checked and materialised
    once, so the subject job and the event job read the very same rows in the very same batches."""
    key, fk = require_link(generator, subjects.columns), generator.sequence.foreign_key
    columns = seed_event_columns(generator, events.columns)
    link = "__spark_synth_link"
    keyed = subjects.withColumn(link, F.col(quoted(key)).cast("string")).drop(key)
    checks = keyed.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(link).alias("distinct")).collect()[0]
    if checks["distinct"] < checks["n"]:  # countDistinct skips nulls: a null key counts as a repeat
        raise SynthError(f"the seed subjects' key '{key}' is null or repeated.", "Give every seed subject its own key.")
    event = F.struct(F.monotonically_increasing_id().alias(SEED_EVENT_ID), *[F.col(quoted(c)) for c in columns])
    nested = (events.select(F.col(quoted(fk)).cast("string").alias(link), event.alias("event"))
              .groupBy(link).agg(F.array_sort(F.collect_list("event")).alias(SEED_EVENTS)))
    orphans = nested.join(keyed.select(link), link, "left_anti").count()
    if orphans:
        raise SynthError(f"seed events of {orphans} key(s) reference no seed subject ('{fk}' not among the seed "
                         f"subjects' '{key}').", "Give each seed event the key of a seed subject.")
    return keyed.join(nested, link, "left").drop(link).localCheckpoint(eager=True)


def _chunked(spark: SparkSession, generator: Generator, output: str, ddl: str, units: int, seed: int,
             chunk_size: int, partitions: int | None, controls: Controls, device: str = "cpu") -> DataFrame:
    """``spark.range(n_chunks).mapInArrow``: each chunk is ``generator.sample_chunk(output, seed, chunk, n, first)``."""
    n_chunks = math.ceil(units / chunk_size)
    key, shipped = _ship(spark, generator)

    def generate_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        worker_generator = _on_task_device(_cached_generator(key, shipped), device)
        _set_threads()
        attempt = _attempt()
        for batch in batches:
            for chunk_id in batch.column(0).to_pylist():
                maybe_kill_task(output, chunk_id, attempt)
                first = chunk_id * chunk_size
                yield worker_generator.sample_chunk(output, seed, chunk_id, min(chunk_size, units - first), first,
                                                    controls)

    # without a count, spark.range takes the session's default parallelism (on Spark Connect too)
    chunks = spark.range(0, n_chunks, 1, numPartitions=min(partitions, n_chunks)) if partitions else \
        spark.range(0, n_chunks, 1)
    return chunks.mapInArrow(generate_chunks, ddl)


def _per_batch(spark: SparkSession, generator: Generator, data: DataFrame, work, schema,
               device: str = "cpu") -> DataFrame:
    """``data.mapInArrow``: each Arrow batch becomes ``work(generator, batch, id of its first row)``."""
    key, shipped = _ship(spark, generator)
    columns = data.columns

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        worker_generator = _on_task_device(_cached_generator(key, shipped), device)
        _set_threads()
        for batch in batches:
            if batch.num_rows:
                first = int(batch.column(len(columns))[0].as_py())
                yield work(worker_generator, batch.select(list(range(len(columns)))), first)

    return data.withColumn(ROW_ID, F.monotonically_increasing_id()).mapInArrow(run, schema)


def _ship(spark: SparkSession, generator: Generator):
    """(a key naming the generator, its files): broadcast once to the executors on a classic session; on
    Spark Connect, which has no broadcast, carried inside the task closure (generators are a few MB)."""
    payload = generator.to_payload()
    key = hashlib.sha256(b"".join(payload[name] for name in sorted(payload))).hexdigest()
    return key, payload if is_connect(spark) else spark.sparkContext.broadcast(payload)


def _cached_generator(key: str, shipped) -> Generator:
    """Build the generator once per Python worker, not once per task or chunk."""
    if key not in _WORKER_CACHE:
        payload = shipped if isinstance(shipped, dict) else shipped.value
        _WORKER_CACHE.clear()
        _WORKER_CACHE[key] = from_payload(payload)
    return _WORKER_CACHE[key]


def _on_task_device(generator: Generator, device: str) -> Generator:
    """The worker's generator on this task's device: the GPU Spark's scheduling gave the task (its first
    address), else the process's default GPU; the CPU for ``device="cpu"``."""
    target = "cpu"
    if device == "cuda":
        from pyspark import TaskContext

        context = TaskContext.get()
        gpus = context.resources().get("gpu") if context is not None else None
        target = f"cuda:{gpus.addresses[0]}" if gpus is not None and gpus.addresses else "cuda"
    if str(generator.device) != target:  # a worker keeps its generator between tasks, possibly of other jobs
        generator.to(target)
    return generator


def _attempt() -> int:
    """This task's attempt number (0 on its first try)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.attemptNumber() if context is not None else 0


def _set_threads() -> None:
    """One torch thread per task core, so concurrent tasks do not oversubscribe the executor."""
    import torch
    from pyspark import TaskContext

    context = TaskContext.get()
    cpus = context.cpus() if context is not None and hasattr(context, "cpus") else int(os.environ.get("SPARK_SYNTH_THREADS", 1))
    torch.set_num_threads(max(1, int(cpus)))
