"""Categorical and categorical-like columns: one code per protected value plus NULL and RARE."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_synth.encoding.base import NULL_CODE, SubColumn, null_mask
from spark_synth.encoding.stats import ColumnStats
from spark_synth.encoding.types import arrow_type

RARE_CODE = 1
FIRST_VALUE_CODE = 2
RARE_TOKEN = "_RARE_"


class CategoricalCodec:
    """Codes: 0 = null, 1 = rare (any value held by fewer than k rows), 2.. = the kept values.

    Strings decode RARE as the token ``_RARE_``; numeric categorical-like columns have no token, so
    a rare number is encoded as the nearest kept value instead (its neighbours are protected).
    """

    def __init__(self, stats: ColumnStats) -> None:
        self.name: str = stats.name
        self.stats = stats
        self.values: list[Any] = list(stats.values or ())
        self.type = arrow_type(stats.spark_type)
        self.numeric = pa.types.is_integer(self.type) or pa.types.is_floating(self.type) or pa.types.is_decimal(self.type)
        self.sub_columns = [SubColumn(self.name, FIRST_VALUE_CODE + len(self.values))]
        value_type = pa.float64() if self.numeric else (pa.string() if not pa.types.is_boolean(self.type) else pa.bool_())
        self._value_set = pa.array(self.values, type=value_type)

    def encode(self, values: pa.Array) -> np.ndarray:
        nulls = null_mask(values)
        if self.numeric:
            codes = self._encode_numeric(values, nulls)
        else:
            probe = values.cast(self._value_set.type) if not pa.types.is_boolean(values.type) else values
            index = pc.index_in(probe, value_set=self._value_set).to_numpy(zero_copy_only=False)
            codes = np.where(np.isnan(index.astype(np.float64)), RARE_CODE, np.nan_to_num(index) + FIRST_VALUE_CODE)
        codes = np.where(nulls, NULL_CODE, codes)
        return codes.astype(np.int32).reshape(-1, 1)

    @property
    def thresholds(self) -> np.ndarray:
        """Midpoints between consecutive kept numbers: a number takes the kept value of its interval, so a rare
        number becomes its nearest kept one (a number on a midpoint goes up). One rule for numpy and Spark."""
        kept = np.asarray(self._value_set.to_numpy(zero_copy_only=False), dtype=np.float64)
        return np.unique(kept[:-1] + (kept[1:] - kept[:-1]) / 2)

    def _encode_numeric(self, values: pa.Array, nulls: np.ndarray) -> np.ndarray:
        if not self.values:
            return np.full(len(values), RARE_CODE)
        x = pc.fill_null(values.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        return np.searchsorted(self.thresholds, np.where(nulls, 0.0, x), side="right") + FIRST_VALUE_CODE

    def decode(self, codes: np.ndarray, rng: np.random.Generator, row_ids: np.ndarray) -> pa.Array:
        code = codes[:, 0]
        is_null = code == NULL_CODE
        if self.numeric:
            kept = np.asarray(self.values, dtype=np.float64)
            index = np.clip(code - FIRST_VALUE_CODE, 0, max(len(kept) - 1, 0))
            out = kept[index] if len(kept) else np.zeros(len(code))
            is_null |= (code == RARE_CODE) & (len(kept) == 0)
            return pa.array(out, mask=is_null).cast(self.type, safe=False)
        lookup = pa.array([None, RARE_TOKEN if not pa.types.is_boolean(self.type) else None, *self.values])
        return pc.take(lookup, pa.array(code.astype(np.int64))).cast(self.type)
