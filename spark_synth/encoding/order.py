"""The order column of an event log as "first value + gaps", so generated events are ordered by construction.

At a subject's first event the model sees the order value itself; at every later event only the
non-negative gap to the previous one. Decoding adds the gaps up within each subject.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_synth.encoding.datetime import MICROS_PER_DAY, to_micros
from spark_synth.encoding.stats import ColumnStats
from spark_synth.encoding.types import FLOAT_TYPES, INTEGER_TYPES, arrow_type

FIRST = "__order_first"
GAP = "__order_gap"
MICROS_PER_SECOND = 1_000_000


def gap_type(spark_type: str) -> str | None:
    """Spark type of the gap for an order column of this type (None: not gap-coded, sorted only).

    Dates step in days, timestamps in seconds, numbers in their own unit.
    """
    if spark_type == "date":
        return "int"
    if spark_type in ("timestamp", "timestamp_ntz") or spark_type in FLOAT_TYPES or spark_type.startswith("decimal"):
        return "double"
    if spark_type in INTEGER_TYPES:
        return "bigint"
    return None


def _as_units(values: pa.Array, spark_type: str) -> np.ndarray:
    """Values in the unit gaps are added in: days for dates, microseconds for timestamps."""
    if spark_type == "date":
        return to_micros(values).astype(np.float64) / MICROS_PER_DAY
    if spark_type in ("timestamp", "timestamp_ntz"):
        return to_micros(values).astype(np.float64)
    return pc.fill_null(values.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)


def restore(first: pa.Array, gap: pa.Array, is_start: np.ndarray, spark_type: str, fallback: float) -> pa.Array:
    """The order column of subject-major event rows: each subject's first value plus its running gaps.

    ``fallback`` (in the same units as ``first``'s protected minimum) stands in for a first value the
    sampler left null, which training never shows it but a sampler could in principle produce.
    """
    if len(first) == 0:
        return pa.array([], type=arrow_type(spark_type))
    base = _as_units(first, spark_type)
    missing = np.asarray(first.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    base = np.where(missing, fallback, base)
    steps = np.clip(pc.fill_null(gap.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False), 0, None)
    if spark_type in ("timestamp", "timestamp_ntz"):
        steps = steps * MICROS_PER_SECOND
    steps = np.where(is_start, 0.0, steps)
    segment = np.cumsum(is_start) - 1
    start_rows = np.flatnonzero(is_start)
    running = np.cumsum(steps)
    values = base[start_rows][segment] + running - running[start_rows][segment]
    target = arrow_type(spark_type)
    if spark_type == "date":
        return pa.array(np.round(values).astype(np.int32), type=pa.int32()).cast(pa.date32())
    if spark_type in ("timestamp", "timestamp_ntz"):
        return pa.array(np.round(values).astype(np.int64), type=pa.int64()).cast(target)
    if spark_type in INTEGER_TYPES:
        return pa.array(np.round(values).astype(np.int64)).cast(target, safe=False)
    return pa.array(values).cast(target, safe=False)


def fallback_units(stats: ColumnStats, spark_type: str) -> float:
    """The protected minimum of the first-value column, in the units of :func:`restore`."""
    low = float(stats.min if stats.min is not None else stats.values[0] if stats.values else 0)
    if spark_type == "date":
        return low / MICROS_PER_DAY  # datetime stats hold epoch microseconds
    return low


def split(values: pa.Array, is_start: np.ndarray, spark_type: str) -> tuple[pa.Array, pa.Array]:
    """(first value, gap) of subject-major ordered values: the inverse of :func:`restore`.

    The first value is null after a subject's first event and the gap null at it, as in training.
    """
    target = arrow_type(spark_type)
    values = values.cast(target)
    first = pc.if_else(pa.array(is_start), values, pa.nulls(len(values), type=target))
    units = _as_units(values, spark_type)
    steps = np.diff(units, prepend=units[:1])
    if spark_type in ("timestamp", "timestamp_ntz"):
        steps = steps / MICROS_PER_SECOND
    kind = gap_type(spark_type)
    gap_arrow = arrow_type(kind)
    if kind in ("int", "bigint"):
        steps = np.round(steps)
    gap = pa.array(steps, mask=np.asarray(is_start, dtype=bool)).cast(gap_arrow, safe=False)
    return first, gap
