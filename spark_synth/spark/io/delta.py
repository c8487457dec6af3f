"""Delta tables: Spark's own Delta where the session has it (its commits are atomic), delta-rs otherwise.

Without Spark's Delta, Spark still does the heavy work: it reads the snapshot's Parquet files and writes new
ones to a hidden sibling, and delta-rs only turns them into a table or one commit on the existing table.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from spark_synth.errors import SynthError, first_line
from spark_synth.spark.io.files import FORMAT_FIX, spark_write
from spark_synth.spark.io.fs import DELTA_LOG, FileSystem, local_path, place, staging, swap, temp_sibling
from spark_synth.spark.schema import quoted
from spark_synth.spark.session import has_delta

# Delta reader features that a plain read of the data files would get wrong.
UNSUPPORTED_DELTA_FEATURES = ("deletionVectors", "columnMapping")


def _spark_file_uri(uri: str, table: str) -> str:
    """A delta-rs file URI as Spark should read it: local paths get ``file:``, s3 stays s3a if asked so."""
    if uri.startswith("/"):
        return "file:" + uri
    if uri.startswith("s3://") and table.startswith("s3a://"):
        return "s3a://" + uri[len("s3://") :]
    return uri


def _read_delta_rs(spark: SparkSession, table: str) -> DataFrame:
    """Read the current snapshot's files with Spark: a plain directory read would also see removed files."""
    from deltalake import DeltaTable
    from pyspark.sql.types import StructType

    dt = DeltaTable(local_path(table))
    unsupported = sorted(set(dt.protocol().reader_features or ()) & set(UNSUPPORTED_DELTA_FEATURES))
    if unsupported:
        raise SynthError(
            f"Delta table {table} uses {', '.join(unsupported)}, which needs Delta Lake for Spark to read.",
            "Read it on a Spark session with Delta Lake (Databricks, or the delta-spark jars), or rewrite the "
            "table without these features.",
        )
    # Delta's schema string is Spark's StructType JSON: this keeps the exact types, partition columns included.
    schema = StructType.fromJson(json.loads(dt.schema().to_json()))
    files = [_spark_file_uri(uri, table) for uri in dt.file_uris()]
    if not files:
        return spark.createDataFrame([], schema)
    reader = spark.read.schema(schema)
    if dt.metadata().partition_columns:
        reader = reader.option("basePath", table)
    df = reader.parquet(*files)
    return df.select(*[quoted(name) for name in schema.fieldNames()])


def read_delta(spark: SparkSession, fs: FileSystem, path: str) -> DataFrame:
    if not fs.exists(fs.join(path, DELTA_LOG)):
        raise SynthError(f"{path} is not a Delta table (it has no {DELTA_LOG}).", FORMAT_FIX)
    if has_delta(spark):
        return spark.read.format("delta").load(path)
    return _read_delta_rs(spark, fs.qualify(path))


@contextlib.contextmanager
def _micros_timestamps(spark: SparkSession) -> Iterator[None]:
    """Make Spark write TIMESTAMP_MICROS (delta-rs rejects INT96) for the duration of one write."""
    key = "spark.sql.parquet.outputTimestampType"
    try:
        previous = spark.conf.get(key, None)
        spark.conf.set(key, "TIMESTAMP_MICROS")
    except Exception:  # noqa: BLE001 - a managed runtime may forbid it; its default then stands
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)


def _parquet_reader(fs: FileSystem, path: str, columns: list[str] | None = None) -> Any:
    """Stream the Parquet files Spark wrote as Arrow batches, so the data never has to fit on the driver."""
    import pyarrow.dataset as pads

    files = [local_path(f) for f in fs.data_files(path)]
    dataset = pads.dataset(files, format="parquet")
    return dataset.scanner(columns=columns).to_reader()


def _delta_rs_commit(fs: FileSystem, staged: str, target: str, mode: str, partition_by: list[str]) -> None:
    """Append to or overwrite the existing Delta table ``target`` with the staged Parquet files, as one commit."""
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import DeltaError

    uri = local_path(target)
    table = DeltaTable(uri)
    columns = None
    if mode == "append":
        table_columns = [field.name for field in table.schema().fields]
        if partition_by and partition_by != list(table.metadata().partition_columns):
            raise SynthError(
                f"Delta table {target} is partitioned by {list(table.metadata().partition_columns)}, "
                f"not {partition_by}.",
                "Append without --partition-by (the table's partitioning is kept), or use --mode overwrite.",
            )
        import pyarrow.dataset as pads

        staged_columns = pads.dataset(
            [local_path(f) for f in fs.data_files(staged)], format="parquet"
        ).schema.names
        if sorted(staged_columns) == sorted(table_columns):
            columns = table_columns  # same columns in another order: match the table's order
    try:
        if mode == "append":
            write_deltalake(uri, _parquet_reader(fs, staged, columns), mode="append")
        else:
            write_deltalake(
                uri,
                _parquet_reader(fs, staged),
                mode="overwrite",
                schema_mode="overwrite",
                partition_by=partition_by or None,
            )
    except DeltaError as exc:
        raise SynthError(
            f"Could not {mode} to Delta table {target}: {first_line(exc)}",
            "Write the same columns and types as the table, or pass --mode overwrite to replace it.",
        ) from exc


def _write_delta_rs(
    spark: SparkSession,
    fs: FileSystem,
    df: DataFrame,
    target: str,
    mode: str,
    partition_by: list[str],
    is_delta: bool,
) -> None:
    """Delta without Spark's Delta: Spark writes Parquet to a temp dir, delta-rs makes it a table (or commits it)."""
    from deltalake import convert_to_deltalake, write_deltalake

    staged = temp_sibling(fs, target, "tmp")
    built = None
    try:
        with _micros_timestamps(spark):
            # Unpartitioned: delta-rs's convert mis-reads escaped partition directories (e.g. a value with '/').
            spark_write(df, staged, "parquet", [])
        if is_delta:
            _delta_rs_commit(fs, staged, target, mode, partition_by)
            return
        if partition_by:
            built = temp_sibling(fs, target, "tmp")
            write_deltalake(local_path(built), _parquet_reader(fs, staged), partition_by=partition_by)
            place(fs, built, target)
        else:
            convert_to_deltalake(local_path(staged))  # metadata only: the files stay where Spark wrote them
            place(fs, staged, target)
    finally:
        for path in (staged, built):
            if path is not None and fs.exists(path):
                fs.delete(path)


def _write_delta_spark(
    fs: FileSystem, df: DataFrame, target: str, mode: str, partition_by: list[str], existed: bool, is_delta: bool
) -> None:
    """Delta with Spark's Delta: its commits are atomic, so write in place (a non-Delta target is swapped)."""
    if existed and not is_delta:  # overwrite of a plain directory: build the table aside, then swap it in
        with staging(fs, target) as staged:
            writer = df.write.format("delta").mode("error")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            writer.save(staged)
            swap(fs, staged, target)
        return
    writer = df.write.format("delta").mode(mode)
    if mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    try:
        writer.save(target)
    except BaseException:
        if not existed and fs.exists(target):  # a failed first write leaves files but no commit: remove them
            fs.delete(target)
        raise


def write_delta(spark: SparkSession, fs: FileSystem, df: DataFrame, target: str, mode: str, partition_by: list[str],
                existed: bool, is_delta: bool) -> None:
    """Write ``df`` as the Delta table ``target`` (new, overwritten or appended to; ``is_delta``: it is one now)."""
    if has_delta(spark):
        _write_delta_spark(fs, df, target, mode, partition_by, existed, is_delta)
    else:
        _write_delta_rs(spark, fs, df, target, mode, partition_by, is_delta)
