"""Read and write tables (Parquet, CSV, Delta, catalog tables) for the jobs.

Reads infer the format so users can pass whatever they have; writes are atomic so a reader never sees a
partial table and a failed job leaves nothing behind. Paths go through Hadoop's FileSystem API, so the
same code works on local disk, HDFS, S3, ADLS and DBFS. Delta uses Spark's own Delta support where the
session has it and the ``deltalake`` package (delta-rs) otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_synth.errors import SynthError
from spark_synth.schema import quoted
from spark_synth.spark import has_delta

READ_FORMATS = ("parquet", "csv", "delta", "table")
WRITE_FORMATS = ("parquet", "csv", "delta", "table")
WRITE_MODES = ("error", "overwrite", "append")

_PARQUET_SUFFIXES = (".parquet", ".parq")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_DELTA_LOG = "_delta_log"
# Delta reader features that a plain read of the data files would get wrong.
_UNSUPPORTED_DELTA_FEATURES = ("deletionVectors", "columnMapping")
_FORMAT_FIX = "Check the path, or pass the format explicitly (--format parquet|csv|delta)."


# --------------------------------------------------------------------------------------------- filesystem


def _hidden(name: str) -> bool:
    """Spark's own rule for files a table read skips (_SUCCESS, .crc, _delta_log, temp dirs)."""
    return (name.startswith("_") and "=" not in name) or name.startswith(".") or name.endswith("._COPYING_")


def _local(path: str) -> str:
    """A ``file:`` URI as a plain local path (delta-rs, pyarrow and os want those)."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return path


class _Fs:
    """Hadoop FileSystem through the JVM (any Hadoop URI), or the local disk when there is no JVM (Spark Connect).

    Every method takes and returns path strings; JVM paths are fully qualified (``file:/tmp/x``, ``s3a://b/x``).
    """

    def __init__(self, spark: SparkSession, path: str) -> None:
        self._jvm: Any = None
        self._fs: Any = None
        try:
            jvm = spark._jvm  # type: ignore[attr-defined]
            conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
            self._fs = jvm.org.apache.hadoop.fs.Path(path).getFileSystem(conf)
            self._jvm = jvm
        except Exception:  # noqa: BLE001 - Spark Connect has no JVM: fall back to the local disk
            self._jvm = None

    def _p(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def qualify(self, path: str) -> str:
        if self._jvm is not None:
            return str(self._fs.makeQualified(self._p(path)).toString())
        return os.path.abspath(_local(path))

    def parent_and_name(self, path: str) -> tuple[str, str]:
        if self._jvm is not None:
            jpath = self._p(path)
            parent = jpath.getParent()
            name = str(jpath.getName())
            if parent is None or not name:
                raise SynthError(f"Cannot write to {path}: it is a root directory.", "Give a path below it.")
            return str(parent.toString()), name
        parent, name = os.path.split(path.rstrip("/"))
        if not name:
            raise SynthError(f"Cannot write to {path}: it is a root directory.", "Give a path below it.")
        return parent, name

    def join(self, parent: str, child: str) -> str:
        if self._jvm is not None:
            return str(self._jvm.org.apache.hadoop.fs.Path(self._p(parent), child).toString())
        return os.path.join(parent, child)

    def exists(self, path: str) -> bool:
        if self._jvm is not None:
            return bool(self._fs.exists(self._p(path)))
        return os.path.lexists(_local(path))

    def is_dir(self, path: str) -> bool:
        if self._jvm is not None:
            return bool(self._fs.isDirectory(self._p(path))) if self.exists(path) else False
        return os.path.isdir(_local(path))

    def delete(self, path: str) -> bool:
        if self._jvm is not None:
            return bool(self._fs.delete(self._p(path), True))
        local = _local(path)
        if os.path.isdir(local) and not os.path.islink(local):
            shutil.rmtree(local)
            return True
        if os.path.lexists(local):
            os.remove(local)
            return True
        return False

    def mkdirs(self, path: str) -> None:
        if self._jvm is not None:
            self._fs.mkdirs(self._p(path))
        else:
            os.makedirs(_local(path), exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst``, which must not exist (Hadoop would move a directory *into* an existing one)."""
        if self.exists(dst):
            raise SynthError(
                f"Output {dst} appeared while this job was writing it.",
                "Make sure no other job writes the same path, then run again.",
            )
        if self._jvm is not None:
            if not self._fs.rename(self._p(src), self._p(dst)):
                raise OSError(f"Could not rename {src} to {dst}.")
        else:
            os.rename(_local(src), _local(dst))

    def data_files(self, root: str) -> Iterator[str]:
        """Files under ``root`` a table read would use: hidden files and directories are skipped, not entered."""
        if self._jvm is not None:
            if not self._fs.isDirectory(self._p(root)):
                yield self.qualify(root)
                return
            stack = [self._p(root)]
            while stack:
                for status in self._fs.listStatus(stack.pop()):
                    jpath = status.getPath()
                    if _hidden(str(jpath.getName())):
                        continue
                    if status.isDirectory():
                        stack.append(jpath)
                    else:
                        yield str(jpath.toString())
            return
        local = _local(root)
        if not os.path.isdir(local):
            yield local
            return
        for dirpath, dirnames, filenames in os.walk(local):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            for filename in sorted(filenames):
                if not _hidden(filename):
                    yield os.path.join(dirpath, filename)


def path_exists(spark: SparkSession, path: str | os.PathLike[str]) -> bool:
    """True when ``path`` exists, on any Hadoop filesystem the session can reach."""
    path = os.fspath(path)
    return _Fs(spark, path).exists(path)


def delete_path(spark: SparkSession, path: str | os.PathLike[str]) -> bool:
    """Delete ``path`` recursively (used to clean partial output); True when something was deleted."""
    path = os.fspath(path)
    fs = _Fs(spark, path)
    return fs.delete(path) if fs.exists(path) else False


# --------------------------------------------------------------------------------------------------- read


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_dataframe(obj: object) -> bool:
    if isinstance(obj, DataFrame):
        return True
    # Spark Connect's DataFrame is a separate class in Spark 3.5. Recognised by its module, not imported:
    # importing pyspark.sql.connect without grpc can call sys.exit() (it takes `python -c` for a doctest run).
    return type(obj).__module__.startswith("pyspark.sql.connect") and type(obj).__name__ == "DataFrame"


def _looks_like_table_name(source: str) -> bool:
    return bool(source) and not any(ch in source for ch in "/\\:")


def _try_table(spark: SparkSession, name: str) -> DataFrame | None:
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


def _suffix_format(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(_CSV_SUFFIXES):
        return "csv"
    return None


def _infer_format(fs: _Fs, path: str) -> str:
    if fs.is_dir(path) and fs.exists(fs.join(path, _DELTA_LOG)):
        return "delta"
    fmt = _suffix_format(path.rstrip("/"))
    if fmt is not None:
        return fmt
    if not fs.is_dir(path):
        raise SynthError(f"Cannot tell the format of {path} from its name.", _FORMAT_FIX)
    first = next(fs.data_files(path), None)
    if first is None:
        raise SynthError(f"{path} contains no data files.", _FORMAT_FIX)
    fmt = _suffix_format(first)
    if fmt is None:
        raise SynthError(f"Cannot tell the format of the files in {path} (e.g. {first}).", _FORMAT_FIX)
    return fmt


def _spark_file_uri(uri: str, table: str) -> str:
    """A delta-rs file URI as Spark should read it: local paths get ``file:``, s3 stays s3a if asked so."""
    if uri.startswith("/"):
        return "file:" + uri
    if uri.startswith("s3://") and table.startswith("s3a://"):
        return "s3a://" + uri[len("s3://") :]
    return uri


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _read_delta_rs(spark: SparkSession, table: str) -> DataFrame:
    """Read the current snapshot's files with Spark: a plain directory read would also see removed files."""
    from deltalake import DeltaTable
    from pyspark.sql.types import StructType

    dt = DeltaTable(_local(table))
    unsupported = sorted(set(dt.protocol().reader_features or ()) & set(_UNSUPPORTED_DELTA_FEATURES))
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
    return df.select(*[_quote(name) for name in schema.fieldNames()])


def _read_path(spark: SparkSession, fs: _Fs, path: str, fmt: str) -> DataFrame:
    if fmt == "delta":
        if not fs.exists(fs.join(path, _DELTA_LOG)):
            raise SynthError(f"{path} is not a Delta table (it has no {_DELTA_LOG}).", _FORMAT_FIX)
        if has_delta(spark):
            return spark.read.format("delta").load(path)
        return _read_delta_rs(spark, fs.qualify(path))
    if fs.is_dir(path) and next(fs.data_files(path), None) is None:
        raise SynthError(f"{path} contains no data files.", _FORMAT_FIX)
    if fmt == "parquet":
        return spark.read.parquet(path)
    df = spark.read.option("header", True).option("inferSchema", True).csv(path)
    if not df.columns:
        raise SynthError(f"{path} has no header row.", "Give a CSV file whose first line names the columns.")
    return df


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
        df = _try_table(spark, src)
        if df is None:
            raise SynthError(
                f"Table {src} not found.", "Check the table name (name, db.name or catalog.db.name)."
            )
        return df
    if fmt is None and _looks_like_table_name(src):
        df = _try_table(spark, src)
        if df is not None:
            return df
    fs = _Fs(spark, src)
    if not fs.exists(src):
        raise SynthError(
            f"No input at {src}.",
            "Check the path and the format (--format parquet|csv|delta), or give an existing table name.",
        )
    fmt = fmt or _infer_format(fs, src)
    try:
        return _read_path(spark, fs, src, fmt)
    except SynthError:
        raise
    except Exception as exc:  # noqa: BLE001 - Spark and delta-rs raise many types; the user needs the path
        fix = f"Check that {src} holds valid {fmt} data, or pass the right --format."
        if "TIMESTAMP(NANOS" in str(exc):  # pandas' default; Spark reads micro- and milliseconds only
            fix = (
                "Spark cannot read nanosecond timestamps: rewrite the file with microseconds, e.g. pandas "
                "df.to_parquet(path, coerce_timestamps='us', allow_truncated_timestamps=True)."
            )
        raise SynthError(f"Could not read {src} as {fmt}: {_first_line(exc)}", fix) from exc


# -------------------------------------------------------------------------------------------------- write


def _temp_sibling(fs: _Fs, target: str, kind: str) -> str:
    """A hidden sibling of ``target``: same filesystem (so rename is cheap), skipped by readers of the parent."""
    parent, name = fs.parent_and_name(target)
    return fs.join(parent, f".{name}._{kind}-{uuid.uuid4().hex}")


@contextlib.contextmanager
def _staging(fs: _Fs, target: str) -> Iterator[str]:
    """A hidden sibling of ``target`` to build an output in; removed afterwards unless renamed into place."""
    staged = _temp_sibling(fs, target, "tmp")
    try:
        yield staged
    finally:
        if fs.exists(staged):
            fs.delete(staged)


def _partition_columns(df: DataFrame, partition_by: str | Sequence[str] | None) -> list[str]:
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


def _spark_write(df: DataFrame, path: str, fmt: str, partition_by: list[str]) -> None:
    writer = df.write.mode("error")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if fmt == "csv":
        # Spark's default CSV timestamp formats keep milliseconds only: keep the microseconds.
        writer = writer.option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
        writer.option("timestampNTZFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS").option("header", True).csv(path)
    else:
        writer.parquet(path)


def _swap(fs: _Fs, new: str, target: str) -> None:
    """Replace ``target`` by ``new``: old aside, new in (old back if that fails), then old deleted."""
    old = _temp_sibling(fs, target, "old")
    fs.rename(target, old)
    try:
        fs.rename(new, target)
    except BaseException:
        fs.rename(old, target)
        raise
    fs.delete(old)


def _place(fs: _Fs, new: str, target: str) -> None:
    if fs.exists(target):
        _swap(fs, new, target)
    else:
        fs.rename(new, target)


def _move_files(fs: _Fs, src_root: str, target: str) -> None:
    """Append: move each new data file (keeping partition subdirectories) into ``target``; undo on failure."""
    src_root = fs.qualify(src_root)
    moved: list[str] = []
    try:
        for src in list(fs.data_files(src_root)):
            relative = src[len(src_root) :].lstrip("/")
            dst = fs.join(target, relative)
            fs.mkdirs(fs.parent_and_name(dst)[0])
            fs.rename(src, dst)
            moved.append(dst)
    except BaseException:
        for dst in moved:
            fs.delete(dst)
        raise


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


def _parquet_reader(fs: _Fs, path: str, columns: list[str] | None = None) -> Any:
    """Stream the Parquet files Spark wrote as Arrow batches, so the data never has to fit on the driver."""
    import pyarrow.dataset as pads

    files = [_local(f) for f in fs.data_files(path)]
    dataset = pads.dataset(files, format="parquet")
    return dataset.scanner(columns=columns).to_reader()


def _delta_rs_commit(fs: _Fs, staged: str, target: str, mode: str, partition_by: list[str]) -> None:
    """Append to or overwrite the existing Delta table ``target`` with the staged Parquet files, as one commit."""
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import DeltaError

    uri = _local(target)
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
            [_local(f) for f in fs.data_files(staged)], format="parquet"
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
            f"Could not {mode} to Delta table {target}: {_first_line(exc)}",
            "Write the same columns and types as the table, or pass --mode overwrite to replace it.",
        ) from exc


def _write_delta_rs(
    spark: SparkSession,
    fs: _Fs,
    df: DataFrame,
    target: str,
    mode: str,
    partition_by: list[str],
    is_delta: bool,
) -> None:
    """Delta without Spark's Delta: Spark writes Parquet to a temp dir, delta-rs makes it a table (or commits it)."""
    from deltalake import convert_to_deltalake, write_deltalake

    staged = _temp_sibling(fs, target, "tmp")
    built = None
    try:
        with _micros_timestamps(spark):
            # Unpartitioned: delta-rs's convert mis-reads escaped partition directories (e.g. a value with '/').
            _spark_write(df, staged, "parquet", [])
        if is_delta:
            _delta_rs_commit(fs, staged, target, mode, partition_by)
            return
        if partition_by:
            built = _temp_sibling(fs, target, "tmp")
            write_deltalake(_local(built), _parquet_reader(fs, staged), partition_by=partition_by)
            _place(fs, built, target)
        else:
            convert_to_deltalake(_local(staged))  # metadata only: the files stay where Spark wrote them
            _place(fs, staged, target)
    finally:
        for path in (staged, built):
            if path is not None and fs.exists(path):
                fs.delete(path)


def _write_delta_spark(
    fs: _Fs, df: DataFrame, target: str, mode: str, partition_by: list[str], existed: bool, is_delta: bool
) -> None:
    """Delta with Spark's Delta: its commits are atomic, so write in place (a non-Delta target is swapped)."""
    if existed and not is_delta:  # overwrite of a plain directory: build the table aside, then swap it in
        with _staging(fs, target) as staged:
            writer = df.write.format("delta").mode("error")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            writer.save(staged)
            _swap(fs, staged, target)
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
    parts = _partition_columns(df, partition_by)
    if fmt == "table":
        _write_catalog_table(df, os.fspath(path), mode, parts)
        return
    spark = df.sparkSession
    raw = os.fspath(path)
    fs = _Fs(spark, raw)
    target = fs.qualify(raw)
    existed = fs.exists(target)
    if existed and mode == "error":
        raise SynthError(
            f"Output {raw} already exists.",
            "Choose another output path, or pass --mode overwrite to replace it (--mode append to add to it).",
        )
    is_delta = existed and fs.exists(fs.join(target, _DELTA_LOG))
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

    if fmt == "delta" and has_delta(spark):
        _write_delta_spark(fs, df, target, mode, parts, existed, is_delta)
        return
    if fmt == "delta":
        _write_delta_rs(spark, fs, df, target, mode, parts, is_delta)
        return
    with _staging(fs, target) as staged:
        _spark_write(df, staged, fmt, parts)
        if existed and mode == "append":
            _move_files(fs, staged, target)
        else:
            _place(fs, staged, target)


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
    fs = _Fs(frames[0].sparkSession, raw)
    target = fs.qualify(raw)
    if mode == "error" and fs.exists(target):
        raise SynthError(f"Output {raw} already exists.",
                         "Choose another output path, or pass --mode overwrite to replace it.")
    with _staging(fs, target) as staged:
        fs.mkdirs(staged)
        for name, (frame, partition_by) in tables.items():
            _spark_write(frame, fs.join(staged, name), fmt, _partition_columns(frame, partition_by))
        _place(fs, staged, target)


# ------------------------------------------------------------------------------------------ catalog tables

_TABLE_NAME = re.compile(r"^(`[^`]+`|[A-Za-z_][\w-]*)(\.(`[^`]+`|[A-Za-z_][\w-]*)){0,2}$")


def check_table_name(name: str) -> str:
    if not _TABLE_NAME.match(name):
        raise SynthError(f"{name!r} is not a table name.",
                         "Name the output table as table, schema.table or catalog.schema.table (Unity Catalog).")
    return name


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


def _write_catalog_table(df: DataFrame, name: str, mode: str, partition_by: list[str]) -> None:
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


def derived_subjects(events: DataFrame, foreign_key: str, key: str) -> DataFrame:
    """The subject table of events given alone: one row per distinct non-null key, the key its only column."""
    return events.select(F.col(quoted(foreign_key)).alias(key)).where(F.col(quoted(key)).isNotNull()).distinct()
