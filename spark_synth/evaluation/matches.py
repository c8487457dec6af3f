"""Exact copies: the share of synthetic rows identical to a training row vs to a holdout row, over all rows.

Unlike the distance figures (on samples), this runs on every synthetic row as Spark joins on a 64-bit
hash of the whole row, so one copied record among billions is still counted. A generator that learned
the distribution produces some rows identical to real ones by chance (frequent, low-entropy rows); it
should do so as often for holdout rows as for training rows. The training side is subsampled to the
holdout's size so that the two shares are comparable.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_synth.evaluation.bins import aligned

_NULL = "\x00"


def row_hash(df: DataFrame, columns: list[str], types: dict[str, T.DataType]) -> Column:
    """A hash of the whole row, values compared as text in the real side's types; a null is its own value."""
    parts = [F.coalesce(aligned(df, c, types[c]).cast("string"), F.lit(_NULL)) for c in columns]
    return F.xxhash64(*parts)


def identical_shares(synthetic: DataFrame, training: DataFrame, holdout: DataFrame, columns: list[str],
                     n_training: int, n_holdout: int, seed: int = 0) -> dict[str, float]:
    """``identical_training`` / ``identical_holdout``: shares of synthetic rows with an exact twin in a
    training sample of the holdout's size / in the holdout; ``identical_training_all``: in all training."""
    types = {c: training.schema[c].dataType for c in columns}
    fraction = min(1.0, n_holdout / max(n_training, 1))
    same_size = training.sample(fraction=fraction, seed=seed) if fraction < 1 else training
    hashes = {name: df.select(row_hash(df, columns, types).alias("h")).distinct().withColumn(name, F.lit(1))
              for name, df in (("trn", same_size), ("all", training), ("hol", holdout))}
    counted = synthetic.select(row_hash(synthetic, columns, types).alias("h")).groupBy("h").count()
    for keys in hashes.values():
        counted = counted.join(keys, "h", "left")
    row = counted.agg(
        F.sum("count").alias("n"),
        *[F.sum(F.when(F.col(name).isNotNull(), F.col("count")).otherwise(0)).alias(name) for name in hashes],
    ).first()
    n = row["n"] or 0
    if n == 0:
        raise ValueError("the synthetic data has no rows")
    return {"identical_training": row["trn"] / n, "identical_holdout": row["hol"] / n,
            "identical_training_all": row["all"] / n}
