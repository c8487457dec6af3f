"""A whole table's codec: the per-column codecs in column order, flattened into sub-columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spark_synth.encoding.base import NULL_CODE, ColumnCodec, SubColumn
from spark_synth.encoding.categorical import RARE_CODE, CategoricalCodec
from spark_synth.encoding.datetime import DatetimeCodec
from spark_synth.encoding.keys import KeyCodec
from spark_synth.encoding.numeric import BinnedCodec, DigitsCodec
from spark_synth.encoding.stats import ColumnStats, TableStats

CODECS: dict[str, type] = {
    "categorical": CategoricalCodec,
    "digits": DigitsCodec,
    "binned": BinnedCodec,
    "datetime": DatetimeCodec,
    "key": KeyCodec,
}


def build_codec(column_stats: ColumnStats) -> ColumnCodec:
    """Rebuild a column codec from its (protected) statistics."""
    return CODECS[column_stats.encoding](column_stats)


class TableCodec:
    """Encodes Arrow record batches to an ``(n, S)`` int32 code matrix and decodes it back.

    ``columns`` are the output columns in the original order; ``modelled`` those with at least
    one sub-column. ``column_slices[i]`` is the range of sub-columns of ``modelled[i]``.
    """

    def __init__(self, stats: TableStats) -> None:
        self.stats = stats
        self.columns: list[ColumnCodec] = [build_codec(c) for c in stats.columns]
        self.modelled = [c for c in self.columns if c.sub_columns]
        self.sub_columns: list[SubColumn] = [s for c in self.modelled for s in c.sub_columns]
        self.column_slices: list[tuple[int, int]] = []
        start = 0
        for codec in self.modelled:
            self.column_slices.append((start, start + len(codec.sub_columns)))
            start += len(codec.sub_columns)

    def unreleased_codes(self) -> dict[int, list[int]]:
        """Sub-column index -> codes the statistics say do not occur (null, rare), for categorical and binned
        columns.

        The model may still see such codes in training (under DP a few nulls or rare values below the
        release threshold; without it fewer nulls than the protection's k), so they are forbidden at
        generation only (:meth:`FlatARGN.forbid_codes`).
        """
        out: dict[int, list[int]] = {}
        for codec, (start, _) in zip(self.modelled, self.column_slices, strict=True):
            if isinstance(codec, BinnedCodec) and not codec.stats.has_nulls:
                out[start] = [NULL_CODE]
            elif isinstance(codec, CategoricalCodec):
                # a numeric category never encodes RARE: rare numbers snap to their nearest released value
                codes = [NULL_CODE] * (not codec.stats.has_nulls) + [RARE_CODE] * (
                    codec.numeric or not codec.stats.has_rare)
                if codes:
                    out[start] = codes
        return out

    @property
    def cardinalities(self) -> list[int]:
        return [s.cardinality for s in self.sub_columns]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def encode(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        parts = [c.encode(_column(batch, c.name)) for c in self.modelled]
        if not parts:
            return np.zeros((batch.num_rows, 0), dtype=np.int32)
        return np.concatenate(parts, axis=1).astype(np.int32)

    def decode(self, codes: np.ndarray, rng: np.random.Generator, row_ids: np.ndarray) -> pa.RecordBatch:
        """Codes back to values. Columns decode in a fixed order, so rng draws are reproducible."""
        slices = dict(zip((c.name for c in self.modelled), self.column_slices, strict=True))
        arrays = []
        for codec in self.columns:
            lo, hi = slices.get(codec.name, (0, 0))
            arrays.append(codec.decode(codes[:, lo:hi], rng, row_ids))
        return pa.RecordBatch.from_arrays(arrays, names=self.column_names)


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    column = batch.column(batch.schema.get_field_index(name))
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
