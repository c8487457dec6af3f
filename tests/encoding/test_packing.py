"""Encoded shards hold each row's codes packed into 63-bit words: the layout and its round trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spark_synth.encoding.packing import WORD_BITS, bits_for, layout, pack, unpack, words


@pytest.mark.parametrize(("cardinality", "bits"), [(1, 1), (2, 1), (3, 2), (12, 4), (31, 5), (10_002, 14)])
def test_a_field_holds_every_code_of_its_sub_column(cardinality: int, bits: int) -> None:
    assert bits_for(cardinality) == bits and 2**bits >= cardinality


def test_fields_fill_a_word_in_order_then_open_the_next() -> None:
    fields = layout([2**20] * 4)  # 20 bits each: three fit in 63 bits, the fourth starts a new word
    assert [(f.word, f.shift, f.bits) for f in fields] == [("w0", 0, 20), ("w0", 20, 20), ("w0", 40, 20), ("w1", 0, 20)]
    assert all(f.shift + f.bits <= WORD_BITS for f in fields)
    assert words(fields) == ["w0", "w1"]


def test_codes_round_trip_through_words_at_their_extremes() -> None:
    cardinalities = [2, 12, 31, 10_002, 7, 100, 2, 60, 60, 24, 101, 3, 16_000, 5]
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, c, 1000) for c in cardinalities], axis=1).astype(np.int32)
    codes[0] = [c - 1 for c in cardinalities]  # every field full
    codes[1] = 0
    fields = layout(cardinalities)
    packed = pack(codes, fields)
    assert all((w >= 0).all() for w in packed.values())  # the sign bit stays clear
    table = pa.table({name: pa.array(w) for name, w in packed.items()})
    assert np.array_equal(unpack(table, fields), codes)


def test_a_table_without_codes_packs_to_no_words() -> None:
    assert layout([]) == [] and unpack(pa.table({"x": [1, 2]}), []).shape == (2, 0)
