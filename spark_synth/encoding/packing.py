"""Encoded rows as a few 63-bit words: each sub-column's code in its own bit field.

Why: a Parquet writer's cost grows with the number of values it writes, not their size. A row of
15 small codes written as 15 int columns cost Spark more than encoding them; packed into two
words it writes 2 values. The layout is a pure function of the cardinalities, so the writer (a
Spark expression) and the readers (numpy, here) agree without storing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

WORD_BITS = 63  # the sign bit stays clear: words are non-negative Spark longs
WORD_PREFIX = "w"


@dataclass(frozen=True)
class Field:
    """Where one sub-column's code lives: bits [shift, shift + bits) of the long column ``word``."""

    word: str
    shift: int
    bits: int


def bits_for(cardinality: int) -> int:
    """Bits that hold every code 0..cardinality-1 (at least one, so a field always exists)."""
    return max(1, (cardinality - 1).bit_length())


def layout(cardinalities: list[int]) -> list[Field]:
    """Sub-columns in order, each placed in the current word while it fits, else in the next one."""
    fields, word, used = [], 0, 0
    for cardinality in cardinalities:
        bits = bits_for(cardinality)
        if bits > WORD_BITS:
            raise ValueError(f"a sub-column of {cardinality} codes does not fit a {WORD_BITS}-bit word")
        if used + bits > WORD_BITS:
            word, used = word + 1, 0
        fields.append(Field(f"{WORD_PREFIX}{word}", used, bits))
        used += bits
    return fields


def words(fields: list[Field]) -> list[str]:
    """The word columns of a layout, in order."""
    return list(dict.fromkeys(f.word for f in fields))


def pack(codes: np.ndarray, fields: list[Field]) -> dict[str, np.ndarray]:
    """(n, S) codes -> word name -> int64 words (what the Spark encoder writes)."""
    out = {name: np.zeros(len(codes), dtype=np.int64) for name in words(fields)}
    for j, f in enumerate(fields):
        out[f.word] |= codes[:, j].astype(np.int64) << f.shift
    return out


def unpack(table: pa.Table, fields: list[Field]) -> np.ndarray:
    """(n, S) int32 codes from a table holding the layout's word columns."""
    columns = {name: table.column(name).to_numpy() for name in words(fields)}
    codes = np.empty((table.num_rows, len(fields)), dtype=np.int32)
    for j, f in enumerate(fields):
        codes[:, j] = (columns[f.word] >> f.shift) & ((1 << f.bits) - 1)
    return codes
