"""Chunked generation on Spark: ``spark.range(n_chunks).mapInArrow(...)``.

A chunk is a fixed number of rows; its content depends only on (generator, seed, chunk id, chunk
size). Partitioning only decides which task computes which chunks, so the table is the same for
any partition count, and a retried task rewrites exactly the same rows. With ``device="cuda"`` each
task samples on its GPU (:meth:`Generator.to`): the content then also depends on the device type.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_synth.controls import Controls, plan
from spark_synth.errors import SynthError
from spark_synth.faults import maybe_kill_task
from spark_synth.generator import Generator
from spark_synth.log_generator import LogGenerator
from spark_synth.log_seed import SEED_EVENT_ID, SEED_EVENTS, require_link, seed_event_columns
from spark_synth.schema import quoted
from spark_synth.spark import is_connect

_WORKER_CACHE: dict[str, Generator | LogGenerator] = {}
ROW_ID = "__spark_synth_row"  # an input row's id, naming its batch's random stream
JOB_NAMES = {"generate_chunk": "rows", "generate_subjects_chunk": "subjects", "generate_events_chunk": "events"}


def spark_schema(generator: Generator) -> str:
    """DDL of the output: the original column names and Spark types."""
    return ", ".join(f"{quoted(c['name'])} {c['spark_type']}" for c in generator.stats["columns"])


def _ddl(types: dict[str, str]) -> str:
    return ", ".join(f"{quoted(name)} {kind}" for name, kind in types.items())


def generate_dataframe(
    spark: SparkSession,
    generator: Generator,
    rows: int,
    seed: int = 0,
    chunk_size: int = 100_000,
    partitions: int | None = None,
    controls: Controls | None = None,
    device: str = "cpu",
) -> DataFrame:
    """A lazy DataFrame of ``rows`` synthetic rows; nothing runs until it is written or aggregated."""
    if controls is not None:
        plan(generator.codec, controls)  # refuse bad controls here, not in a task
    return _chunked(spark, generator, "generate_chunk", spark_schema(generator), rows, seed, chunk_size, partitions,
                    controls, device)


def generate_seeded_dataframe(spark: SparkSession, generator: Generator, seed_data: DataFrame, seed: int = 0,
                              controls: Controls | None = None, device: str = "cpu") -> DataFrame:
    """One synthetic row per row of ``seed_data`` (lazy): its columns kept, the others generated given them.

    Each Arrow batch draws from generators seeded by (seed, its first row's id), so the output is
    reproducible for the same input and partitioning.
    """
    plan(generator.codec, controls or Controls(), generator.seed_columns(seed_data.columns))

    def seeded(worker: Generator, batch: pa.RecordBatch, first: int) -> pa.RecordBatch:
        return worker.generate_seeded(batch, seed, first, first, controls)

    return _per_batch(spark, generator, seed_data, seeded, spark_schema(generator), device)


def impute_dataframe(spark: SparkSession, generator: Generator, data: DataFrame, columns: list[str], seed: int = 0,
                     controls: Controls | None = None) -> DataFrame:
    """``data`` with the nulls of ``columns`` filled by the generator (lazy); present values are kept."""
    generator.check_imputation(data.columns, columns)
    plan(generator.codec, controls or Controls())

    def imputed(worker: Generator, batch: pa.RecordBatch, first: int) -> pa.RecordBatch:
        return worker.impute_batch(batch, columns, seed, first, controls)

    return _per_batch(spark, generator, data, imputed, data.schema)


def generate_log_dataframes(
    spark: SparkSession,
    generator: LogGenerator,
    subjects: int,
    seed: int = 0,
    chunk_size: int = 10_240,
    partitions: int | None = None,
    controls: Controls | None = None,
    device: str = "cpu",
) -> tuple[DataFrame, DataFrame]:
    """Lazy (subjects, events) DataFrames for ``subjects`` synthetic subjects; chunks are of subjects."""
    if controls is not None:
        generator.check_controls(controls)  # refuse bad controls here, not in a task
    subject_df = _chunked(spark, generator, "generate_subjects_chunk", spark_schema(generator.subjects), subjects,
                          seed, chunk_size, partitions, controls, device)
    event_df = _chunked(spark, generator, "generate_events_chunk", _ddl(generator.event_types), subjects,
                        seed, chunk_size, partitions, controls, device)
    return subject_df, event_df


def generate_seeded_log_dataframes(spark: SparkSession, generator: LogGenerator, seed_data: DataFrame,
                                   seed: int = 0, controls: Controls | None = None,
                                   seed_events: DataFrame | None = None, device: str = "cpu") -> tuple[DataFrame, DataFrame]:
    """Lazy (subjects, events): one subject per row of ``seed_data`` (subject columns, kept) with its events;
    with ``seed_events`` (linked by the subject key) each subject's events begin with its given ones.

    Both jobs redraw the same subject codes from (seed, batch), so the events belong to the subjects.
    """
    if seed_events is not None:
        seed_data = _with_seed_events(generator, seed_data, seed_events)
    generator.seed_columns(seed_data.columns)
    generator.check_controls(controls)

    def subjects(worker: LogGenerator, batch: pa.RecordBatch, first: int) -> pa.RecordBatch:
        return worker.generate_seeded_subjects(batch, seed, first, first, controls)

    def events(worker: LogGenerator, batch: pa.RecordBatch, first: int) -> pa.RecordBatch:
        return worker.generate_seeded_events(batch, seed, first, first, controls)

    return (_per_batch(spark, generator, seed_data, subjects, spark_schema(generator.subjects), device),
            _per_batch(spark, generator, seed_data, events, _ddl(generator.event_types), device))


def _with_seed_events(generator: LogGenerator, subjects: DataFrame, events: DataFrame) -> DataFrame:
    """Seed subjects with their seed events nested in :data:`SEED_EVENTS` (key dropped), checked and materialised
    once, so the subject job and the event job read the very same rows in the very same batches."""
    key, fk = require_link(generator, subjects.columns), generator.sequence["foreign_key"]
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


def _chunked(spark: SparkSession, generator: Generator | LogGenerator, method: str, ddl: str, units: int, seed: int,
             chunk_size: int, partitions: int | None, controls: Controls | None = None, device: str = "cpu") -> DataFrame:
    """``spark.range(n_chunks).mapInArrow``: each chunk calls ``generator.<method>(seed, chunk, n, first)``."""
    n_chunks = math.ceil(units / chunk_size)
    key, shipped = _ship(spark, generator)
    extra = (controls,) if controls is not None else ()

    def generate_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        worker_generator = _on_task_device(_cached_generator(key, shipped), device)
        _set_threads()
        produce = getattr(worker_generator, method)
        attempt, job = _attempt(), JOB_NAMES[method]
        for batch in batches:
            for chunk_id in batch.column(0).to_pylist():
                maybe_kill_task(job, chunk_id, attempt)
                first = chunk_id * chunk_size
                yield produce(seed, chunk_id, min(chunk_size, units - first), first, *extra)

    # without a count, spark.range takes the session's default parallelism (on Spark Connect too)
    chunks = spark.range(0, n_chunks, 1, numPartitions=min(partitions, n_chunks)) if partitions else \
        spark.range(0, n_chunks, 1)
    return chunks.mapInArrow(generate_chunks, ddl)


def _per_batch(spark: SparkSession, generator: Generator | LogGenerator, data: DataFrame, work, schema,
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


def _ship(spark: SparkSession, generator: Generator | LogGenerator):
    """(a key naming the generator, its files): broadcast once to the executors on a classic session; on
    Spark Connect, which has no broadcast, carried inside the task closure (generators are a few MB)."""
    payload = generator.to_payload()
    key = hashlib.sha256(b"".join(payload[name] for name in sorted(payload))).hexdigest()
    return key, payload if is_connect(spark) else spark.sparkContext.broadcast(payload)


def _cached_generator(key: str, shipped) -> Generator | LogGenerator:
    """Build the generator once per Python worker, not once per task or chunk."""
    if key not in _WORKER_CACHE:
        payload = shipped if isinstance(shipped, dict) else shipped.value
        _WORKER_CACHE.clear()
        kind = LogGenerator if "log.json" in payload else Generator
        _WORKER_CACHE[key] = kind.from_payload(payload)
    return _WORKER_CACHE[key]


def _on_task_device(generator: Generator | LogGenerator, device: str) -> Generator | LogGenerator:
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
