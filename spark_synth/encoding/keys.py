"""Primary-key-like columns are not modelled: they are regenerated unique per output row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spark_synth.encoding.stats import ColumnStats
from spark_synth.encoding.types import arrow_type


class KeyCodec:
    """Keys derived from the global row id: unique across chunks without coordination."""

    def __init__(self, stats: ColumnStats) -> None:
        self.name: str = stats.name
        self.stats = stats
        self.sub_columns: list = []
        self.type = arrow_type(stats.spark_type)

    def encode(self, values: pa.Array) -> np.ndarray:
        return np.zeros((len(values), 0), dtype=np.int32)

    def decode(self, codes: np.ndarray, rng: np.random.Generator, row_ids: np.ndarray) -> pa.Array:
        if pa.types.is_integer(self.type):
            return pa.array(row_ids.astype(np.int64) + 1).cast(self.type)
        keys = pa.array(np.char.add("syn-", (row_ids + 1).astype(str)))  # chunked past a few million rows
        return (keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys).cast(self.type)
