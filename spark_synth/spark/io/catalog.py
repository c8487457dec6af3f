"""Catalog tables (Hive metastore, Unity Catalog): found by name on read, replaced under a temporary name on write."""

from __future__ import annotations

import re
import uuid

from pyspark.sql import DataFrame, SparkSession

from spark_synth.errors import SynthError
from spark_synth.spark.session import has_delta

_TABLE_NAME = re.compile(r"^(`[^`]+`|[A-Za-z_][\w-]*)(\.(`[^`]+`|[A-Za-z_][\w-]*)){0,2}$")


def check_table_name(name: str) -> str:
    if not _TABLE_NAME.match(name):
        raise SynthError(f"{name!r} is not a table name.",
                         "Name the output table as table, schema.table or catalog.schema.table (Unity Catalog).")
    return name


def looks_like_table_name(source: str) -> bool:
    return bool(source) and not any(ch in source for ch in "/\\:")


def find_table(spark: SparkSession, name: str) -> DataFrame | None:
    """The catalog table or (temp) view ``name``, or None; tableExists rejects some names spark.table takes."""
    try:
        if spark.catalog.tableExists(name):
            return spark.table(name)
    except Exception:  # noqa: BLE001 - e.g. a three-part name on a catalog that has two levels
        pass
    try:
        df = spark.table(name)
        _ = df.schema  # Spark Connect resolves lazily: force it so a missing table fails here
        return df
    except Exception:  # noqa: BLE001 - not a table
        return None


def write_catalog_table(df: DataFrame, name: str, mode: str, partition_by: list[str]) -> None:
    """A catalog table, Delta where the session has it (Databricks, Unity Catalog): then every mode is one
    atomic commit. Elsewhere a new or replacing table is built under a temporary name and renamed into place,
    and an append is Spark's own job commit."""
    spark = df.sparkSession
    check_table_name(name)
    exists = spark.catalog.tableExists(name)
    if exists and mode == "error":
        raise SynthError(f"Output table {name} already exists.",
                         "Choose another table name, or pass --mode overwrite (--mode append to add to it).")
    delta = has_delta(spark)

    def writer(frame: DataFrame, how: str):
        w = frame.write.mode(how)
        if delta:
            w = w.format("delta").option("overwriteSchema", "true") if how == "overwrite" else w.format("delta")
        return w.partitionBy(*partition_by) if partition_by else w

    if delta or (exists and mode == "append"):
        writer(df, mode).saveAsTable(name)
        return
    staged = f"{name.rsplit('.', 1)[0] + '.' if '.' in name else ''}`_spark_synth_tmp_{uuid.uuid4().hex[:12]}`"
    try:
        writer(df, "error").saveAsTable(staged)
        if exists:
            spark.sql(f"DROP TABLE {name}")
        spark.sql(f"ALTER TABLE {staged} RENAME TO {name}")
        if partition_by:  # a rename keeps the old partition locations: list them again from the moved files
            spark.sql(f"ALTER TABLE {name} RECOVER PARTITIONS")
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {staged}")
