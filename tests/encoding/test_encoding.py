"""Round trips and protection behaviour of each column codec (numpy/Arrow only, no Spark)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from spark_synth.encoding import TableCodec
from spark_synth.encoding.categorical import RARE_TOKEN, CategoricalCodec
from spark_synth.encoding.datetime import DatetimeCodec
from spark_synth.encoding.keys import KeyCodec
from spark_synth.encoding.numeric import BinnedCodec, DigitsCodec
from spark_synth.encoding.stats import ColumnStats, TableStats

RNG = np.random.default_rng(0)
IDS = np.arange(5)


def _stats(encoding: str, values: dict) -> ColumnStats:
    """A column's statistics as stats.json would hold them."""
    return ColumnStats.from_json({"encoding": encoding, **values})


def test_categorical_round_trip_with_null_and_rare() -> None:
    codec = CategoricalCodec(_stats("categorical", {"name": "c", "spark_type": "string", "values": ["a", "b"]}))
    values = pa.array(["a", None, "b", "zzz-rare", "a"])
    codes = codec.encode(values)
    assert codes[:, 0].tolist() == [2, 0, 3, 1, 2]
    decoded = codec.decode(codes, RNG, IDS).to_pylist()
    assert decoded == ["a", None, "b", RARE_TOKEN, "a"]


def test_numeric_categorical_maps_rare_values_to_the_nearest_kept_value() -> None:
    codec = CategoricalCodec(_stats("categorical", {"name": "n", "spark_type": "bigint", "values": [10, 20, 40]}))
    codes = codec.encode(pa.array([10, 19, 33, None, 1000]))
    decoded = codec.decode(codes, RNG, IDS).to_pylist()
    assert decoded == [10, 20, 40, None, 40]  # 1000 is clipped to the largest protected value
    assert codec.encode(pa.array([15, 30, 29.9]))[:, 0].tolist() == [3, 4, 3]  # a midpoint goes up


def test_boolean_round_trip() -> None:
    codec = CategoricalCodec(_stats("categorical", {"name": "b", "spark_type": "boolean", "values": [False, True]}))
    values = pa.array([True, False, None, True, True])
    assert codec.decode(codec.encode(values), RNG, IDS).to_pylist() == values.to_pylist()


def test_digits_round_trip_and_clipping() -> None:
    codec = DigitsCodec(_stats("digits", {"name": "d", "spark_type": "bigint", "min": 3, "max": 1203, "has_nulls": True}))
    assert [s.cardinality for s in codec.sub_columns] == [2, 2, 10, 10, 10]  # null flag, 4 digits of 0..1200
    values = pa.array([3, 57, None, 1203, 99999])
    decoded = codec.decode(codec.encode(values), RNG, IDS).to_pylist()
    assert decoded == [3, 57, None, 1203, 1203]


def test_binned_values_stay_in_their_bin_and_point_masses_decode_exactly() -> None:
    stats = {"name": "x", "spark_type": "double", "min": 0.0, "max": 10.0, "edges": [0.0, 0.0, 1.0, 5.0, 10.0],
             "point_masses": [0.0], "integral": False, "has_nulls": True}
    codec = BinnedCodec(_stats("binned", stats))
    values = pa.array([0.0, 0.5, 3.0, 7.5, None, 50.0])
    out = codec.decode(codec.encode(values), np.random.default_rng(1), np.arange(6)).to_pylist()
    assert out[0] == 0.0  # a point mass decodes exactly
    assert 0.0 <= out[1] <= 1.0 and 1.0 <= out[2] <= 5.0 and 5.0 <= out[3] <= 10.0
    assert out[4] is None and 5.0 <= out[5] <= 10.0  # 50 was clipped to the protected maximum


def test_binned_decode_is_a_function_of_the_rng_seed() -> None:
    stats = {"name": "x", "spark_type": "bigint", "min": 0, "max": 1000, "edges": [0, 100, 1000], "point_masses": [],
             "integral": True, "has_nulls": False}
    codec = BinnedCodec(_stats("binned", stats))
    codes = codec.encode(pa.array([5, 500, 999]))
    first = codec.decode(codes, np.random.default_rng(7), np.arange(3)).to_pylist()
    assert first == codec.decode(codes, np.random.default_rng(7), np.arange(3)).to_pylist()
    assert all(isinstance(v, int) for v in first)


def test_datetime_round_trip_with_time_and_invalid_day_repair() -> None:
    low = int(dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1e6)
    high = int(dt.datetime(2003, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp() * 1e6)
    codec = DatetimeCodec(_stats("datetime", {"name": "t", "spark_type": "timestamp", "min": low, "max": high, "has_time": True,
                           "has_nulls": True}))
    stamps = [dt.datetime(2002, 2, 28, 13, 45, 7, tzinfo=dt.timezone.utc), None,
              dt.datetime(2003, 12, 31, 0, 0, 1, tzinfo=dt.timezone.utc)]
    values = pa.array(stamps, type=pa.timestamp("us", tz="UTC"))
    codes = codec.encode(values)
    assert codec.decode(codes, RNG, np.arange(3)).to_pylist() == stamps
    codes[0, 1 + 2] = 30  # day index 30 = "Feb 31st": repaired to the last day of the month
    assert codec.decode(codes, RNG, np.arange(3)).to_pylist()[0].day == 28


def test_date_round_trip() -> None:
    low, high = (int(np.datetime64(d, "us").astype(np.int64)) for d in ("1990-01-01", "2020-12-31"))
    codec = DatetimeCodec(_stats("datetime", {"name": "d", "spark_type": "date", "min": low, "max": high, "has_nulls": False}))
    dates = [dt.date(1999, 12, 31), dt.date(2020, 2, 29), dt.date(1990, 1, 1)]
    assert codec.decode(codec.encode(pa.array(dates)), RNG, np.arange(3)).to_pylist() == dates


def test_keys_are_unique_per_row_id() -> None:
    assert KeyCodec(_stats("key", {"name": "id", "spark_type": "bigint"})).decode(np.zeros((3, 0)), RNG, np.array([0, 1, 2])).to_pylist() == [1, 2, 3]
    strings = KeyCodec(_stats("key", {"name": "id", "spark_type": "string"})).decode(np.zeros((2, 0)), RNG, np.array([5, 9]))
    assert len(set(strings.to_pylist())) == 2


def test_millions_of_string_keys_come_back_as_one_array() -> None:
    """pyarrow chunks a large numpy string conversion; a record batch needs one array (found on a GPU run)."""
    keys = KeyCodec(_stats("key", {"name": "id", "spark_type": "string"})).decode(np.zeros((0, 0)), RNG, np.arange(3_000_000))
    assert isinstance(keys, pa.StringArray) and len(keys) == 3_000_000


def test_table_codec_keeps_column_order_and_slices() -> None:
    stats = {"columns": [
        {"name": "id", "spark_type": "bigint", "encoding": "key"},
        {"name": "n", "spark_type": "bigint", "encoding": "digits", "min": 0, "max": 99, "has_nulls": False},
        {"name": "c", "spark_type": "string", "encoding": "categorical", "values": ["x", "y"]},
    ]}
    codec = TableCodec(TableStats.from_json(stats))
    assert codec.column_slices == [(0, 2), (2, 3)]
    batch = pa.RecordBatch.from_pydict({"id": [7, 8], "n": [42, 5], "c": ["y", "x"]})
    decoded = codec.decode(codec.encode(batch), RNG, np.array([0, 1]))
    assert decoded.schema.names == ["id", "n", "c"]
    assert decoded.column(1).to_pylist() == [42, 5] and decoded.column(2).to_pylist() == ["y", "x"]
