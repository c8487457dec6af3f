"""Spark type names <-> Arrow types and the logical kinds the encoders understand."""

from __future__ import annotations

import pyarrow as pa

INTEGER_TYPES = {"tinyint": pa.int8(), "smallint": pa.int16(), "int": pa.int32(), "bigint": pa.int64()}
FLOAT_TYPES = {"float": pa.float32(), "double": pa.float64()}
ARROW_TYPES: dict[str, pa.DataType] = {
    **INTEGER_TYPES,
    **FLOAT_TYPES,
    "string": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}


def logical_kind(spark_type: str) -> str | None:
    """Map a Spark simple type name to categorical / numeric / datetime; None when unsupported."""
    if spark_type in ("string", "boolean") or spark_type.startswith(("varchar", "char")):
        return "categorical"
    if spark_type in INTEGER_TYPES or spark_type in FLOAT_TYPES or spark_type.startswith("decimal"):
        return "numeric"
    if spark_type in ("date", "timestamp", "timestamp_ntz"):
        return "datetime"
    return None


def arrow_type(spark_type: str) -> pa.DataType:
    """Arrow type used when decoding a column back to its original Spark type."""
    if spark_type.startswith(("varchar", "char")):
        return pa.string()
    if spark_type.startswith("decimal"):
        precision, scale = (int(p) for p in spark_type[len("decimal(") : -1].split(","))
        return pa.decimal128(precision, scale)
    return ARROW_TYPES[spark_type]


def is_integer_type(spark_type: str) -> bool:
    return spark_type in INTEGER_TYPES
