"""Validation split by a hash of (row, seed): no shuffle, no collect, same answer on any cluster."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_synth.spark.schema import quoted
from spark_synth.training.data import SPLIT_COLUMN

BUCKETS = 10_000


def with_split(df: DataFrame, seed: int, validation_fraction: float) -> DataFrame:
    """Add a boolean ``__validation`` column; identical rows land on the same side."""
    columns = [F.col(quoted(c)) for c in df.columns]
    bucket = F.pmod(F.xxhash64(F.lit(seed), *columns), F.lit(BUCKETS))
    return df.withColumn(SPLIT_COLUMN, bucket < F.lit(int(round(validation_fraction * BUCKETS))))
