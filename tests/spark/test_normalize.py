"""Text columns holding ISO dates are found, without a full regex scan of plainly textual columns."""

from __future__ import annotations

import pandas as pd

from spark_synth.spark.normalize import PROBE_ROWS, normalize
from spark_synth.spark.schema import plan_columns


def test_text_dates_are_found_and_text_stays_text(spark) -> None:
    n = PROBE_ROWS + 2_000
    days = pd.date_range("2001-01-01", periods=n, freq="h")
    frame = pd.DataFrame({
        "joined": days.strftime("%Y-%m-%d"),
        "seen_at": days.strftime("%Y-%m-%dT%H:%M:%S"),
        "code": [f"A{i % 37}" for i in range(n)],
        "late": [None] * PROBE_ROWS + list(days[:2_000].strftime("%Y-%m-%d")),  # no value in the probe
    })
    df = spark.createDataFrame(frame)
    normalized, plans = normalize(df, plan_columns(df.schema, {}))
    formats = {p.name: p.text_format for p in plans}
    assert formats == {"joined": "date", "seen_at": "timestamp", "code": None, "late": "date"}
    assert dict(normalized.dtypes)["joined"] == "date" and dict(normalized.dtypes)["code"] == "string"
