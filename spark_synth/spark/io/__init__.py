"""Read and write tables (Parquet, CSV, Delta, catalog tables) for the jobs: one module per format.

Reads infer the format so users can pass whatever they have; writes are atomic so a reader never sees a
partial table and a failed job leaves nothing behind. Paths go through Hadoop's FileSystem API (``fs``), so
the same code works on local disk, HDFS, S3, ADLS and DBFS. Delta uses Spark's own Delta support where the
session has it and the ``deltalake`` package (delta-rs) otherwise (``delta``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_synth.errors import SynthError, first_line
from spark_synth.spark.io.catalog import (
    check_table_name,
    find_table,
    looks_like_table_name,
    write_catalog_table,
)
from spark_synth.spark.io.delta import read_delta, write_delta
from spark_synth.spark.io.files import (
    infer_format,
    partition_columns,
    read_files,
    write_files,
    write_tables_together,
)
from spark_synth.spark.io.fs import DELTA_LOG, FileSystem, delete_path, path_exists
from spark_synth.spark.schema import quoted

__all__ = ["READ_FORMATS", "WRITE_FORMATS", "WRITE_MODES", "delete_output", "delete_path",
           "derived_subjects", "output_exists", "path_exists", "read_table", "write_table", "write_tables_together"]

READ_FORMATS = ("parquet", "csv", "delta", "table")
WRITE_FORMATS = ("parquet", "csv", "delta", "table")
WRITE_MODES = ("error", "overwrite", "append")


def _is_dataframe(obj: object) -> bool:
    if isinstance(obj, DataFrame):
        return True
    # Spark Connect's DataFrame is a separate class in Spark 3.5. Recognised by its module, not imported:
    # importing pyspark.sql.connect without grpc can call sys.exit() (it takes `python -c` for a doctest run).
    return type(obj).__module__.startswith("pyspark.sql.connect") and type(obj).__name__ == "DataFrame"


def read_table(
    spark: SparkSession, source: str | os.PathLike[str] | DataFrame, fmt: str | None = None
) -> DataFrame:
    """Read ``source`` (a path, a Spark table name, or a DataFrame) as a DataFrame, never modifying it.

    ``fmt`` is one of parquet, csv, delta, table, or None to infer it: a directory with ``_delta_log`` is
    Delta, a ``.parquet``/``.csv``/``.csv.gz`` name is that format, a directory is what its part files are,
    and a name without ``/`` that the catalog knows (tables and temp views) is a table.
    """
    if _is_dataframe(source):
        return source  # type: ignore[return-value]
    if not isinstance(source, (str, os.PathLike)):
        raise SynthError(
            f"Cannot read input of type {type(source).__name__}.", "Pass a path, a table name or a DataFrame."
        )
    src = os.fspath(source)
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in READ_FORMATS:
            raise SynthError(f"Unknown input format {fmt!r}.", f"Use one of {', '.join(READ_FORMATS)}.")
    if fmt == "table":
        df = find_table(spark, src)
        if df is None:
            raise SynthError(
                f"Table {src} not found.", "Check the table name (name, db.name or catalog.db.name)."
            )
        return df
    if fmt is None and looks_like_table_name(src):
        df = find_table(spark, src)
        if df is not None:
            return df
    fs = FileSystem(spark, src)
    if not fs.exists(src):
        raise SynthError(
            f"No input at {src}.",
            "Check the path and the format (--format parquet|csv|delta), or give an existing table name.",
        )
    fmt = fmt or infer_format(fs, src)
    try:
        return read_delta(spark, fs, src) if fmt == "delta" else read_files(spark, fs, src, fmt)
    except SynthError:
        raise
    except Exception as exc:  # noqa: BLE001 - Spark and delta-rs raise many types; the user needs the path
        fix = f"Check that {src} holds valid {fmt} data, or pass the right --format."
        if "TIMESTAMP(NANOS" in str(exc):  # pandas' default; Spark reads micro- and milliseconds only
            fix = (
                "Spark cannot read nanosecond timestamps: rewrite the file with microseconds, e.g. pandas "
                "df.to_parquet(path, coerce_timestamps='us', allow_truncated_timestamps=True)."
            )
        raise SynthError(f"Could not read {src} as {fmt}: {first_line(exc)}", fix) from exc


def write_table(
    df: DataFrame,
    path: str | os.PathLike[str],
    fmt: str = "parquet",
    mode: str = "error",
    partition_by: str | Sequence[str] | None = None,
) -> None:
    """Write ``df`` to ``path`` atomically: readers see the old table or the new one, never a partial one.

    ``fmt``: parquet, csv (with header), delta, or table (``path`` is then a catalog table name such as
    a Unity Catalog ``catalog.schema.table``). ``mode``: error (refuse an existing path), overwrite
    (replace it), append (add rows; a real Delta commit for Delta). Output is staged in a hidden sibling
    directory and renamed into place; a failure deletes the staging directory and leaves ``path`` as it was.
    """
    fmt, mode = fmt.lower(), mode.lower()
    if fmt not in WRITE_FORMATS:
        raise SynthError(f"Unknown output format {fmt!r}.", f"Use one of {', '.join(WRITE_FORMATS)}.")
    if mode not in WRITE_MODES:
        raise SynthError(f"Unknown write mode {mode!r}.", f"Use one of {', '.join(WRITE_MODES)}.")
    parts = partition_columns(df, partition_by)
    if fmt == "table":
        write_catalog_table(df, os.fspath(path), mode, parts)
        return
    spark = df.sparkSession
    raw = os.fspath(path)
    fs = FileSystem(spark, raw)
    target = fs.qualify(raw)
    existed = fs.exists(target)
    if existed and mode == "error":
        raise SynthError(
            f"Output {raw} already exists.",
            "Choose another output path, or pass --mode overwrite to replace it (--mode append to add to it).",
        )
    is_delta = existed and fs.exists(fs.join(target, DELTA_LOG))
    if existed and mode == "append" and is_delta != (fmt == "delta"):
        kind = "a Delta table" if is_delta else "not a Delta table"
        raise SynthError(
            f"Cannot append {fmt} output to {raw}: it is {kind}.",
            "Append with the format the existing output has, or write to another path.",
        )
    if existed and mode == "append" and not fs.is_dir(target):
        raise SynthError(
            f"Cannot append to {raw}: it is a file, not a table directory.", "Write to another path."
        )

    if fmt == "delta":
        write_delta(spark, fs, df, target, mode, parts, existed, is_delta)
    else:
        write_files(df, fs, target, fmt, parts, append=existed and mode == "append")


def output_exists(spark: SparkSession, target: str, fmt: str) -> bool:
    """True when the output (a path, or with fmt "table" a catalog table) already exists."""
    if fmt == "table":
        return bool(spark.catalog.tableExists(check_table_name(target)))
    return path_exists(spark, target)


def delete_output(spark: SparkSession, target: str, fmt: str) -> None:
    """Remove an output this job wrote (a path, or a catalog table)."""
    if fmt == "table":
        spark.sql(f"DROP TABLE IF EXISTS {check_table_name(target)}")
    else:
        delete_path(spark, target)


def derived_subjects(events: DataFrame, foreign_key: str, key: str) -> DataFrame:
    """The subject table of events given alone: one row per distinct non-null key, the key its only column."""
    return events.select(F.col(quoted(foreign_key)).alias(key)).where(F.col(quoted(key)).isNotNull()).distinct()
