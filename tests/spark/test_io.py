"""spark_synth.spark.io against real Spark and real files: format inference, atomic writes, Delta via delta-rs."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType

from spark_synth.errors import SynthError
from spark_synth.spark.io import delete_path, path_exists, read_table, write_table

SCHEMA = "id int, name string, score double, born date, seen timestamp"
ROWS = [
    (1, "ann", 1.5, dt.date(1990, 1, 2), dt.datetime(2024, 3, 4, 5, 6, 7)),
    (2, None, None, None, None),
    (3, "x/y=z% b", -2.25, dt.date(2001, 12, 31), dt.datetime(2020, 2, 29, 23, 59, 59, 123456)),
]


@pytest.fixture
def df(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(ROWS, SCHEMA)


def rows(frame: DataFrame) -> list[tuple]:
    """Rows as sorted tuples in SCHEMA's column order, whatever order the reader returned."""
    names = [c.split()[0] for c in SCHEMA.split(", ")]
    return sorted((tuple(r[n] for n in names) for r in frame.collect()), key=lambda r: r[0])


def leftovers(parent: Path) -> list[str]:
    """Hidden temp siblings that a write must never leave behind."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("fmt", ["parquet", "csv", "delta"])
def test_round_trip(spark: SparkSession, df: DataFrame, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out_{fmt}"
    write_table(df, str(out), fmt=fmt)
    back = read_table(spark, str(out))  # format inferred from the directory
    assert rows(back) == ROWS
    assert leftovers(tmp_path) == []
    if fmt == "delta":
        table = DeltaTable(str(out))
        assert table.version() == 0
        assert sorted(table.to_pyarrow_table().to_pydict()["id"]) == [1, 2, 3]
        assert dict(back.dtypes) == {
            "id": "int",
            "name": "string",
            "score": "double",
            "born": "date",
            "seen": "timestamp",
        }


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_round_trip_partitioned(spark: SparkSession, df: DataFrame, tmp_path: Path, fmt: str) -> None:
    """Partition values with '/', '=', '%', spaces and nulls survive (delta-rs's convert would not)."""
    out = tmp_path / "parts"
    write_table(df, out, fmt=fmt, partition_by="name")
    back = read_table(spark, out, fmt=fmt)
    assert rows(back) == ROWS
    if fmt == "delta":
        table = DeltaTable(str(out))
        assert table.metadata().partition_columns == ["name"]
        assert sorted(table.to_pyarrow_table().to_pydict()["name"], key=str) == [None, "ann", "x/y=z% b"]


def test_returns_dataframe_as_is(spark: SparkSession, df: DataFrame) -> None:
    assert read_table(spark, df) is df


# ----------------------------------------------------------------------------------------------- inference


def test_infers_single_files(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    pdf = df.toPandas()
    pdf.to_parquet(tmp_path / "t.parquet", coerce_timestamps="us")
    pdf.to_parquet(tmp_path / "nanos.parquet")  # pandas' default: nanoseconds, which Spark cannot read
    with pytest.raises(SynthError, match="nanosecond timestamps"):
        read_table(spark, tmp_path / "nanos.parquet")
    pdf.to_csv(tmp_path / "t.csv", index=False)
    with gzip.open(tmp_path / "t.csv.gz", "wt") as handle:
        pdf.to_csv(handle, index=False)
    assert read_table(spark, tmp_path / "t.parquet").count() == 3
    for name in ("t.csv", "t.csv.gz"):
        back = read_table(spark, tmp_path / name)
        assert back.columns == ["id", "name", "score", "born", "seen"]
        assert back.schema["id"].dataType == IntegerType()
        assert back.count() == 3


def test_infers_directories(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    df.write.parquet(str(tmp_path / "pq_parts"))
    df.write.option("header", True).csv(str(tmp_path / "csv_parts"))
    assert read_table(spark, tmp_path / "pq_parts").count() == 3
    assert read_table(spark, tmp_path / "csv_parts").columns == ["id", "name", "score", "born", "seen"]


def test_delta_read_ignores_files_an_overwrite_removed(
    spark: SparkSession, df: DataFrame, tmp_path: Path
) -> None:
    """Overwrite is a Delta commit (history kept); a read sees only the current snapshot."""
    out = tmp_path / "d"
    write_table(df, out, fmt="delta")
    write_table(df.where("id = 1"), out, fmt="delta", mode="overwrite")
    assert DeltaTable(str(out)).version() == 1
    assert [r.id for r in read_table(spark, out).collect()] == [1]
    assert DeltaTable(str(out), version=0).to_pyarrow_table().num_rows == 3


def test_reads_views_and_tables(spark: SparkSession, df: DataFrame) -> None:
    df.createOrReplaceTempView("io_people")
    df.createOrReplaceGlobalTempView("io_people_global")
    assert read_table(spark, "io_people").count() == 3
    assert read_table(spark, "global_temp.io_people_global").count() == 3
    assert read_table(spark, "io_people", fmt="table").count() == 3
    with pytest.raises(SynthError, match="Table no_such_table not found"):
        read_table(spark, "no_such_table", fmt="table")


def test_read_errors(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    with pytest.raises(SynthError, match="No input at") as info:
        read_table(spark, missing)
    assert str(missing) in str(info.value) and info.value.fix
    with pytest.raises(SynthError, match="No input at no_such_name"):
        read_table(spark, "no_such_name")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthError, match="contains no data files"):
        read_table(spark, tmp_path / "empty")
    with pytest.raises(SynthError, match="contains no data files"):
        read_table(spark, tmp_path / "empty", fmt="parquet")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(SynthError, match="Cannot tell the format"):
        read_table(spark, tmp_path / "notes.txt")
    with pytest.raises(SynthError, match="Unknown input format"):
        read_table(spark, tmp_path / "notes.txt", fmt="json")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SynthError, match="Could not read .*bad.parquet as parquet"):
        read_table(spark, tmp_path / "bad.parquet")
    df.write.parquet(str(tmp_path / "plain"))
    with pytest.raises(SynthError, match="is not a Delta table"):
        read_table(spark, tmp_path / "plain", fmt="delta")


def test_read_never_modifies_source(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "d"
    write_table(df, out, fmt="delta")
    before = sorted(str(p) for p in out.rglob("*"))
    read_table(spark, out).count()
    assert sorted(str(p) for p in out.rglob("*")) == before


# ------------------------------------------------------------------------------------------------- modes


@pytest.mark.parametrize("fmt", ["parquet", "csv", "delta"])
def test_mode_error_refuses_existing(spark: SparkSession, df: DataFrame, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    write_table(df, out, fmt=fmt)
    with pytest.raises(SynthError, match="already exists") as info:
        write_table(df, out, fmt=fmt)
    assert "--mode overwrite" in info.value.fix
    assert rows(read_table(spark, out)) == ROWS


@pytest.mark.parametrize("fmt", ["parquet", "csv", "delta"])
def test_mode_overwrite_replaces(spark: SparkSession, df: DataFrame, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    write_table(df, out, fmt=fmt)
    write_table(df.where("id = 3"), out, fmt=fmt, mode="overwrite")
    assert rows(read_table(spark, out)) == [ROWS[2]]
    assert leftovers(tmp_path) == []


def test_overwrite_plain_directory_with_delta(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_table(df, out, fmt="parquet")
    write_table(df.where("id < 3"), out, fmt="delta", mode="overwrite")
    assert rows(read_table(spark, out)) == ROWS[:2]
    live = {Path(uri).name for uri in DeltaTable(str(out)).file_uris()}
    assert {p.name for p in out.glob("*.parquet")} == live  # the old plain files are gone
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_mode_append_files(spark: SparkSession, df: DataFrame, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    write_table(df.where("id < 3"), out, fmt=fmt, partition_by=["id"] if fmt == "parquet" else None)
    write_table(
        df.where("id = 3"), out, fmt=fmt, mode="append", partition_by=["id"] if fmt == "parquet" else None
    )
    assert rows(read_table(spark, out, fmt=fmt)) == ROWS
    assert leftovers(tmp_path) == []


def test_mode_append_delta(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_table(df, out, fmt="delta")
    assert DeltaTable(str(out)).version() == 0
    # Columns in another order are matched by name.
    write_table(df.select("seen", "born", "score", "name", "id"), out, fmt="delta", mode="append")
    assert DeltaTable(str(out)).version() == 1
    assert sorted(rows(read_table(spark, out))) == sorted(ROWS + ROWS, key=lambda r: r[0])
    assert DeltaTable(str(out)).to_pyarrow_table().num_rows == 6
    assert leftovers(tmp_path) == []


def test_mode_append_delta_partitioned(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_table(df.where("id < 3"), out, fmt="delta", partition_by="name")
    write_table(df.where("id = 3"), out, fmt="delta", mode="append")
    assert DeltaTable(str(out)).version() == 1
    assert rows(read_table(spark, out)) == ROWS


def test_append_errors(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_table(df, out, fmt="delta")
    with pytest.raises(SynthError, match="Could not append to Delta table"):
        write_table(df.select("id", F.lit(1).alias("extra")), out, fmt="delta", mode="append")
    with pytest.raises(SynthError, match="it is a Delta table"):
        write_table(df, out, fmt="parquet", mode="append")
    assert DeltaTable(str(out)).version() == 0
    assert leftovers(tmp_path) == []


def test_write_argument_errors(df: DataFrame, tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="Unknown output format"):
        write_table(df, tmp_path / "x", fmt="orc")
    with pytest.raises(SynthError, match="Unknown write mode"):
        write_table(df, tmp_path / "x", mode="upsert")
    with pytest.raises(SynthError, match="Partition column"):
        write_table(df, tmp_path / "x", partition_by=["nope"])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- atomicity


def _exploding(df: DataFrame) -> DataFrame:
    @F.udf("int")
    def boom(value):  # no type hints: PySpark would try to read a pandas UDF type from them
        if value == 3:
            raise ValueError("boom inside a Python UDF")
        return 0

    return df.withColumn("bad", boom("id"))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "delta"])
def test_failed_write_leaves_nothing(spark: SparkSession, df: DataFrame, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(Exception, match="boom inside a Python UDF"):
        write_table(_exploding(df), out, fmt=fmt)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
@pytest.mark.parametrize("mode", ["overwrite", "append"])
def test_failed_write_keeps_old_table(
    spark: SparkSession, df: DataFrame, tmp_path: Path, fmt: str, mode: str
) -> None:
    out = tmp_path / "out"
    write_table(df, out, fmt=fmt)
    before = sorted(str(p) for p in out.rglob("*"))
    with pytest.raises(Exception, match="boom inside a Python UDF"):
        write_table(_exploding(df).where("bad = 0").drop("bad"), out, fmt=fmt, mode=mode)
    assert sorted(str(p) for p in out.rglob("*")) == before
    assert rows(read_table(spark, out)) == ROWS
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------ helpers


def test_path_helpers(spark: SparkSession, df: DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not path_exists(spark, out)
    assert delete_path(spark, out) is False
    write_table(df, out)
    assert path_exists(spark, out) and path_exists(spark, "file:" + str(out))
    assert delete_path(spark, out) is True
    assert not out.exists() and not os.path.lexists(out)
