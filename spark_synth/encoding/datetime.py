"""Dates and timestamps as calendar parts: year (offset by the protected minimum), month, day,
and hour/minute/second when the column carries a time of day.

Calendar parts keep seasonality learnable (months, weekdays through day) with small softmaxes;
impossible combinations (Feb 30) are repaired at decode by clipping the day to the month.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_synth.encoding.base import SubColumn, null_mask
from spark_synth.encoding.stats import ColumnStats
from spark_synth.encoding.types import arrow_type

MICROS_PER_DAY = 86_400_000_000
TIME_PARTS = (("hour", 24, 3_600_000_000), ("minute", 60, 60_000_000), ("second", 60, 1_000_000))


def to_micros(values: pa.Array) -> np.ndarray:
    """Microseconds since the epoch for a date or timestamp array (nulls become 0)."""
    if pa.types.is_date(values.type):
        values = values.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
        return np.nan_to_num(values.to_numpy(zero_copy_only=False).astype(np.float64)).astype(np.int64) * MICROS_PER_DAY
    values = values.cast(pa.timestamp("us", tz=getattr(values.type, "tz", None))).cast(pa.int64())
    return np.nan_to_num(values.to_numpy(zero_copy_only=False).astype(np.float64)).astype(np.int64)


class DatetimeCodec:
    def __init__(self, stats: ColumnStats) -> None:
        self.name: str = stats.name
        self.stats = stats
        self.low, self.high = int(stats.min), int(stats.max)  # protected bounds, epoch micros
        self.has_time = bool(stats.has_time)
        self.has_nulls = bool(stats.has_nulls)
        self.year0 = int(np.datetime64(self.low, "us").astype("datetime64[Y]").astype(np.int64)) + 1970
        year1 = int(np.datetime64(self.high, "us").astype("datetime64[Y]").astype(np.int64)) + 1970
        subs = [SubColumn(f"{self.name}__null", 2)] if self.has_nulls else []
        subs += [
            SubColumn(f"{self.name}__year", year1 - self.year0 + 1),
            SubColumn(f"{self.name}__month", 12),
            SubColumn(f"{self.name}__day", 31),
        ]
        if self.has_time:
            subs += [SubColumn(f"{self.name}__{part}", card) for part, card, _ in TIME_PARTS]
        self.sub_columns = subs

    def encode(self, values: pa.Array) -> np.ndarray:
        nulls = null_mask(values)
        micros = np.clip(to_micros(values), self.low, self.high)
        stamps = micros.astype("datetime64[us]")
        years = stamps.astype("datetime64[Y]")
        months = stamps.astype("datetime64[M]")
        days = stamps.astype("datetime64[D]")
        parts = [
            years.astype(np.int64) + 1970 - self.year0,
            (months - years.astype("datetime64[M]")).astype(np.int64),
            (days - months.astype("datetime64[D]")).astype(np.int64),
        ]
        if self.has_time:
            within_day = micros - days.astype("datetime64[us]").astype(np.int64)
            parts += [(within_day // unit) % card for _, card, unit in TIME_PARTS]
        codes = np.stack(parts, axis=1)
        codes[nulls] = 0
        if self.has_nulls:
            codes = np.concatenate([nulls[:, None].astype(np.int64), codes], axis=1)
        return codes.astype(np.int32)

    def decode(self, codes: np.ndarray, rng: np.random.Generator, row_ids: np.ndarray) -> pa.Array:
        nulls = codes[:, 0] == 1 if self.has_nulls else np.zeros(len(codes), dtype=bool)
        parts = codes[:, 1:] if self.has_nulls else codes
        years = (parts[:, 0].astype(np.int64) + self.year0 - 1970).astype("datetime64[Y]")
        months = years.astype("datetime64[M]") + parts[:, 1].astype(np.int64)
        month_days = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
        day = np.minimum(parts[:, 2].astype(np.int64), month_days - 1)  # repair Feb 30 and the like
        micros = (months.astype("datetime64[D]") + day).astype("datetime64[us]").astype(np.int64)
        if self.has_time:
            for i, (_, _, unit) in enumerate(TIME_PARTS):
                micros = micros + parts[:, 3 + i].astype(np.int64) * unit
        micros = np.clip(micros, self.low, self.high)
        text_format = self.stats.text_format
        if text_format == "date":  # parsed from ISO text: written back as the same text
            return pa.array(micros // MICROS_PER_DAY, mask=nulls).cast(pa.int32()).cast(pa.date32()).cast(pa.string())
        if text_format == "timestamp":
            stamps = pa.array(micros, mask=nulls).cast(pa.int64()).cast(pa.timestamp("us"))
            return pc.strftime(stamps, format="%Y-%m-%d %H:%M:%S")
        target = arrow_type(self.stats.spark_type)
        if pa.types.is_date(target):
            return pa.array(micros // MICROS_PER_DAY, mask=nulls).cast(pa.int32()).cast(pa.date32())
        return pa.array(micros, mask=nulls).cast(pa.int64()).cast(target)
