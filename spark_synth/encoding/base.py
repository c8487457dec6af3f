"""The contract every column codec follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa

from spark_synth.encoding.stats import ColumnStats

NULL_CODE = 0


@dataclass(frozen=True)
class SubColumn:
    """One integer-coded piece of a column: the unit the model predicts with one softmax head."""

    name: str
    cardinality: int


class ColumnCodec(Protocol):
    """Encodes one column to ``len(sub_columns)`` integer codes per row and decodes them back.

    ``decode`` takes the numpy Generator explicitly: every random draw (e.g. a value inside its
    bin) comes from it, so output is a pure function of (codes, seed).
    """

    name: str
    stats: ColumnStats
    sub_columns: list[SubColumn]

    def encode(self, values: pa.Array) -> np.ndarray: ...

    def decode(self, codes: np.ndarray, rng: np.random.Generator, row_ids: np.ndarray) -> pa.Array: ...


def null_mask(values: pa.Array) -> np.ndarray:
    """Boolean array, True where the value is null (or NaN for floats)."""
    return np.asarray(values.is_null(nan_is_null=True).to_numpy(zero_copy_only=False), dtype=bool)
