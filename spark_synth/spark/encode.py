"""Spark job: rows -> integer codes, packed into words and written as Parquet shards (one row = one sample)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_synth.encoding import TableCodec
from spark_synth.encoding.packing import Field, layout
from spark_synth.encoding.stats import TableStats
from spark_synth.spark.codes import encoded_frame
from spark_synth.training.data import BUCKET, SPLIT_COLUMN, SUBJECT_ID

# Spark compiles a stage into one Java method; the encoding's many small expressions make it large, and the
# JVM does not JIT-compile methods over 8000 bytes of bytecode: measured, such a stage ran 6x slower than
# the same expressions evaluated one projection method at a time. Above this size Spark falls back to that.
CODEGEN_SETTINGS = {"spark.sql.codegen.hugeMethodLimit": "8000"}


def shard_layout(codec: TableCodec) -> list[Field]:
    """Where each sub-column's code lives in an encoded shard (a pure function of the cardinalities)."""
    return layout(codec.cardinalities)


def encode_to_shards(df: DataFrame, stats: TableStats, output_dir: str,
                     passthrough: tuple[str, ...] = (SPLIT_COLUMN,), buckets: int = 1) -> list[Field]:
    """Encode ``df`` to Parquet under ``output_dir``; returns the layout of the codes in the shards.

    ``passthrough`` columns are copied as they are: the split flag, or the subject id and step of an
    event. With ``buckets`` > 1, rows go to ``BUCKET=k/`` directories by their subject id, so that a
    subject and all its events land in the same bucket (a rank reads whole buckets).
    """
    codec = TableCodec(stats)
    fields = shard_layout(codec)
    codes = encoded_frame(df, codec, passthrough)
    words: dict[str, Any] = {}
    for j, f in enumerate(fields):
        part = F.shiftleft(F.col(f"c{j}").cast("long"), f.shift)
        words[f.word] = part if f.word not in words else words[f.word] + part
    packed = codes.select(*[w.alias(name) for name, w in words.items()], *passthrough)
    with session_settings(df.sparkSession, CODEGEN_SETTINGS):
        if buckets > 1:
            bucket = F.pmod(F.col(SUBJECT_ID), F.lit(buckets))
            packed.withColumn(BUCKET, bucket).repartition(buckets, BUCKET).write.partitionBy(BUCKET) \
                .mode("overwrite").parquet(output_dir)
        else:
            packed.write.mode("overwrite").parquet(output_dir)
    return fields


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """SQL settings for one job, then the session's own again (a notebook's session is the user's)."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
