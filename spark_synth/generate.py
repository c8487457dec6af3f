"""Chunked generation on Spark: ``spark.range(n_chunks).mapInArrow(...)``.

A chunk is a fixed number of rows; its content depends only on (generator, seed, chunk id, chunk
size). Partitioning only decides which task computes which chunks, so the table is the same for
any partition count, and a retried task rewrites exactly the same rows.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from spark_synth.generator import Generator
from spark_synth.schema import quoted

_WORKER_CACHE: dict[str, Generator] = {}


def spark_schema(generator: Generator) -> str:
    """DDL of the output: the original column names and Spark types."""
    return ", ".join(f"{quoted(c['name'])} {c['spark_type']}" for c in generator.stats["columns"])


def generate_dataframe(
    spark: SparkSession,
    generator: Generator,
    rows: int,
    seed: int = 0,
    chunk_size: int = 100_000,
    partitions: int | None = None,
) -> DataFrame:
    """A lazy DataFrame of ``rows`` synthetic rows; nothing runs until it is written or aggregated."""
    n_chunks = math.ceil(rows / chunk_size)
    partitions = min(partitions or spark.sparkContext.defaultParallelism, n_chunks)
    payload = generator.to_payload()
    key = hashlib.sha256(payload["weights.safetensors"] + payload["stats.json"]).hexdigest()
    shipped = spark.sparkContext.broadcast(payload)

    def generate_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        worker_generator = _cached_generator(key, shipped.value)
        _set_threads()
        for batch in batches:
            for chunk_id in batch.column(0).to_pylist():
                first_row = chunk_id * chunk_size
                n = min(chunk_size, rows - first_row)
                yield worker_generator.generate_chunk(seed, chunk_id, n, first_row)

    chunks = spark.range(0, n_chunks, 1, numPartitions=partitions)
    return chunks.mapInArrow(generate_chunks, spark_schema(generator))


def _cached_generator(key: str, payload: dict[str, bytes]) -> Generator:
    """Build the generator once per Python worker, not once per task or chunk."""
    if key not in _WORKER_CACHE:
        _WORKER_CACHE.clear()
        _WORKER_CACHE[key] = Generator.from_payload(payload)
    return _WORKER_CACHE[key]


def _set_threads() -> None:
    """One torch thread per task core, so concurrent tasks do not oversubscribe the executor."""
    import torch
    from pyspark import TaskContext

    context = TaskContext.get()
    cpus = context.cpus() if context is not None and hasattr(context, "cpus") else int(os.environ.get("SPARK_SYNTH_THREADS", 1))
    torch.set_num_threads(max(1, int(cpus)))
