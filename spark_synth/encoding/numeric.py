"""Numeric columns with many values: per-digit codes for integers, quantile bins otherwise.

Bounds in the stats are protected (k-th smallest/largest), so clipping to them at encode and at
decode keeps real extremes out of the data the model sees and out of what it generates.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_synth.encoding.base import NULL_CODE, SubColumn, null_mask
from spark_synth.encoding.stats import ColumnStats
from spark_synth.encoding.types import arrow_type

MAX_DIGITS = 5  # integers spanning fewer than 10**MAX_DIGITS values are coded digit by digit


def _as_float(values: pa.Array, nulls: np.ndarray) -> np.ndarray:
    x = pc.fill_null(values.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    return np.where(nulls, 0.0, x)


def _to_arrow(x: np.ndarray, nulls: np.ndarray, spark_type: str) -> pa.Array:
    target = arrow_type(spark_type)
    if pa.types.is_integer(target):
        return pa.array(np.round(x).astype(np.int64), mask=nulls).cast(target, safe=False)
    return pa.array(x, mask=nulls).cast(target, safe=False)


class DigitsCodec:
    """Integers as (optional null flag) + one sub-column per decimal digit of ``value - min``.

    Digits let the model learn exact values (e.g. 99999 in capital gains) with small softmaxes.
    """

    def __init__(self, stats: ColumnStats) -> None:
        self.name: str = stats.name
        self.stats = stats
        self.low, self.high = int(stats.min), int(stats.max)
        span = self.high - self.low
        self.n_digits = max(1, len(str(span)))
        self.has_nulls = bool(stats.has_nulls)
        subs = [SubColumn(f"{self.name}__null", 2)] if self.has_nulls else []
        leading = span // 10 ** (self.n_digits - 1)
        subs += [
            SubColumn(f"{self.name}__e{p}", (leading + 1) if i == 0 else 10)
            for i, p in enumerate(range(self.n_digits - 1, -1, -1))
        ]
        self.sub_columns = subs

    def encode(self, values: pa.Array) -> np.ndarray:
        nulls = null_mask(values)
        x = np.clip(np.round(_as_float(values, nulls)), self.low, self.high).astype(np.int64) - self.low
        powers = 10 ** np.arange(self.n_digits - 1, -1, -1, dtype=np.int64)
        digits = (x[:, None] // powers[None, :]) % 10
        digits[:, 0] = x // powers[0]
        digits[nulls] = 0
        if self.has_nulls:
            digits = np.concatenate([nulls[:, None].astype(np.int64), digits], axis=1)
        return digits.astype(np.int32)

    def decode(self, codes: np.ndarray, rng: np.random.Generator, row_ids: np.ndarray) -> pa.Array:
        nulls = codes[:, 0] == 1 if self.has_nulls else np.zeros(len(codes), dtype=bool)
        digits = codes[:, 1:] if self.has_nulls else codes
        powers = 10 ** np.arange(self.n_digits - 1, -1, -1, dtype=np.int64)
        x = np.clip(digits.astype(np.int64) @ powers + self.low, self.low, self.high)
        return _to_arrow(x.astype(np.float64), nulls, self.stats.spark_type)


class BinnedCodec:
    """Values as one of ~100 equal-frequency bins (code 0 = null); decoded uniformly inside the bin.

    Edges repeated among the quantiles mark a point mass (e.g. many exact zeros): such a value
    gets a bin of its own and decodes exactly, instead of being smeared over its neighbours.
    """

    def __init__(self, stats: ColumnStats) -> None:
        self.name: str = stats.name
        self.stats = stats
        self.low, self.high = float(stats.min), float(stats.max)
        self.integer = bool(stats.integral)
        self.edges = np.unique(np.clip(np.asarray(stats.edges, dtype=np.float64), self.low, self.high))
        self.points = np.asarray(sorted(stats.point_masses or ()), dtype=np.float64)
        self.n_intervals = max(len(self.edges) - 1, 1)
        self.sub_columns = [SubColumn(self.name, 1 + len(self.points) + self.n_intervals)]

    def encode(self, values: pa.Array) -> np.ndarray:
        nulls = null_mask(values)
        x = np.clip(_as_float(values, nulls), self.low, self.high)
        interval = np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, self.n_intervals - 1)
        code = 1 + len(self.points) + interval
        if len(self.points):
            at = np.clip(np.searchsorted(self.points, x), 0, len(self.points) - 1)
            is_point = self.points[at] == x
            code = np.where(is_point, 1 + at, code)
        code = np.where(nulls, NULL_CODE, code)
        return code.astype(np.int32).reshape(-1, 1)

    def decode(self, codes: np.ndarray, rng: np.random.Generator, row_ids: np.ndarray) -> pa.Array:
        code = codes[:, 0].astype(np.int64)
        nulls = code == NULL_CODE
        interval = np.clip(code - 1 - len(self.points), 0, self.n_intervals - 1)
        if len(self.edges) >= 2:
            lo, hi = self.edges[interval], self.edges[interval + 1]
        else:
            lo = hi = np.full(len(code), self.low)
        u = rng.random(len(code))
        x = lo + u * (hi - lo)
        if self.integer:
            x = np.clip(np.round(x), np.ceil(self.low), np.floor(self.high))
        if len(self.points):
            is_point = (code >= 1) & (code <= len(self.points))
            x = np.where(is_point, self.points[np.clip(code - 1, 0, len(self.points) - 1)], x)
        return _to_arrow(np.clip(x, self.low, self.high), nulls, self.stats.spark_type)
