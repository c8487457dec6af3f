"""Parquet and CSV paths: a format told from names, read with Spark, written through a staged rename."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession

from spark_synth.errors import SynthError
from spark_synth.spark.io.fs import DELTA_LOG, FileSystem, move_files, place, staging

PARQUET_SUFFIXES = (".parquet", ".parq")
CSV_SUFFIXES = (".csv", ".csv.gz")
FORMAT_FIX = "Check the path, or pass the format explicitly (--format parquet|csv|delta)."


def suffix_format(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def infer_format(fs: FileSystem, path: str) -> str:
    if fs.is_dir(path) and fs.exists(fs.join(path, DELTA_LOG)):
        return "delta"
    fmt = suffix_format(path.rstrip("/"))
    if fmt is not None:
        return fmt
    if not fs.is_dir(path):
        raise SynthError(f"Cannot tell the format of {path} from its name.", FORMAT_FIX)
    first = next(fs.data_files(path), None)
    if first is None:
        raise SynthError(f"{path} contains no data files.", FORMAT_FIX)
    fmt = suffix_format(first)
    if fmt is None:
        raise SynthError(f"Cannot tell the format of the files in {path} (e.g. {first}).", FORMAT_FIX)
    return fmt


def read_files(spark: SparkSession, fs: FileSystem, path: str, fmt: str) -> DataFrame:
    """A Parquet or CSV path (a file or a directory of part files) as Spark reads it."""
    if fs.is_dir(path) and next(fs.data_files(path), None) is None:
        raise SynthError(f"{path} contains no data files.", FORMAT_FIX)
    if fmt == "parquet":
        return spark.read.parquet(path)
    df = spark.read.option("header", True).option("inferSchema", True).csv(path)
    if not df.columns:
        raise SynthError(f"{path} has no header row.", "Give a CSV file whose first line names the columns.")
    return df


def partition_columns(df: DataFrame, partition_by: str | Sequence[str] | None) -> list[str]:
    if partition_by is None:
        return []
    columns = [partition_by] if isinstance(partition_by, str) else list(partition_by)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SynthError(
            f"Partition column(s) {', '.join(missing)} are not in the data.",
            f"Partition by some of: {', '.join(df.columns)}.",
        )
    return columns


def spark_write(df: DataFrame, path: str, fmt: str, partition_by: list[str]) -> None:
    writer = df.write.mode("error")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if fmt == "csv":
        # Spark's default CSV timestamp formats keep milliseconds only: keep the microseconds.
        writer = writer.option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
        writer.option("timestampNTZFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS").option("header", True).csv(path)
    else:
        writer.parquet(path)


def write_files(df: DataFrame, fs: FileSystem, target: str, fmt: str, partition_by: list[str], append: bool) -> None:
    """Stage the files beside ``target``, then rename them in: the whole directory, or each file on append."""
    with staging(fs, target) as staged:
        spark_write(df, staged, fmt, partition_by)
        if append:
            move_files(fs, staged, target)
        else:
            place(fs, staged, target)


def write_tables_together(tables: dict[str, tuple[DataFrame, list[str] | None]], path: str | os.PathLike[str],
                          fmt: str, mode: str) -> None:
    """Several tables as the sub-directories NAME of one output folder, replaced as a whole (Parquet or CSV, mode
    error or overwrite): all are staged in one hidden sibling folder, renamed into place at once, so a reader
    sees the old pair or the new pair, never one new table beside one old (an event log's subjects and events).
    """
    if fmt not in ("parquet", "csv") or mode not in ("error", "overwrite"):
        raise ValueError(f"tables are replaced together only as parquet/csv in mode error/overwrite, not {fmt}/{mode}")
    frames = [frame for frame, _ in tables.values()]
    raw = os.fspath(path)
    fs = FileSystem(frames[0].sparkSession, raw)
    target = fs.qualify(raw)
    if mode == "error" and fs.exists(target):
        raise SynthError(f"Output {raw} already exists.",
                         "Choose another output path, or pass --mode overwrite to replace it.")
    with staging(fs, target) as staged:
        fs.mkdirs(staged)
        for name, (frame, partition_by) in tables.items():
            spark_write(frame, fs.join(staged, name), fmt, partition_columns(frame, partition_by))
        place(fs, staged, target)
