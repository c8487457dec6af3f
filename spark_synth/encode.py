"""Spark job: rows -> integer codes, written as Parquet shards (one row = one training sample)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_synth.encoding import TableCodec
from spark_synth.schema import quoted
from spark_synth.train.data import BUCKET, SPLIT_COLUMN, SUBJECT_ID


def sub_column_fields(codec: TableCodec) -> list[str]:
    """Positional names for the encoded columns: user column names may hold any character."""
    return [f"s{j}" for j in range(len(codec.sub_columns))]


def encode_to_shards(df: DataFrame, stats: dict[str, Any], output_dir: str,
                     passthrough: tuple[tuple[str, str], ...] = ((SPLIT_COLUMN, "boolean"),),
                     buckets: int = 1) -> list[str]:
    """Encode ``df`` to Parquet under ``output_dir``; returns the code field names.

    ``passthrough`` columns (name, Spark type) are copied as they are: the split flag, or the subject
    id and step of an event. With ``buckets`` > 1, rows go to ``BUCKET=k/`` directories by their subject
    id, so that a subject and all its events land in the same bucket (a rank reads whole buckets).
    """
    fields = sub_column_fields(TableCodec(stats))
    extra = [name for name, _ in passthrough]
    schema = ", ".join([*(f"{f} int" for f in fields), *(f"{name} {kind}" for name, kind in passthrough)])

    names = [c["name"] for c in stats["columns"]]

    def encode_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        codec = TableCodec(stats)
        for batch in batches:
            codes = codec.encode(pa.RecordBatch.from_arrays(batch.columns[: len(names)], names=names))
            arrays = [pa.array(codes[:, j]) for j in range(codes.shape[1])]
            arrays += batch.columns[len(names) :]
            yield pa.RecordBatch.from_arrays(arrays, names=[*fields, *extra])

    # positional aliases: PySpark's mapInArrow mis-resolves column names that contain dots
    positional = df.select(*[F.col(quoted(n)).alias(f"c{j}") for j, n in enumerate(names)], *[F.col(e) for e in extra])
    encoded = positional.mapInArrow(encode_batches, schema)
    if buckets > 1:
        bucket = F.pmod(F.col(SUBJECT_ID), F.lit(buckets))
        encoded.withColumn(BUCKET, bucket).repartition(buckets, BUCKET).write.partitionBy(BUCKET) \
            .mode("overwrite").parquet(output_dir)
    else:
        encoded.write.mode("overwrite").parquet(output_dir)
    return fields
