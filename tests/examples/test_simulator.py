"""The behavioral-log simulator: linked, deterministic, and with the structure real logs have."""

from __future__ import annotations

import pandas as pd

from spark_synth.examples.datasets import simulate_log


def test_simulated_log_is_linked_structured_and_reproducible(spark) -> None:
    customers, events = simulate_log(spark, 3000, seed=5, mean_events=12, partitions=3)
    c, e = customers.toPandas(), events.toPandas()
    assert len(c) == 3000 and c.customer_id.is_unique and e.customer_id.isin(c.customer_id).all()
    assert list(e.columns) == ["customer_id", "event_time", "event_type", "channel", "amount"]
    counts = e.groupby("customer_id").size().reindex(c.customer_id, fill_value=0)
    assert 9 < counts.mean() < 15 and counts.std() / counts.mean() > 0.8  # heterogeneous activity
    assert (counts == 0).any()  # some customers never act
    purchases = e.amount.dropna()
    assert (e.amount.notna() == e.event_type.isin(["purchase", "refund"])).all()
    assert purchases.max() / purchases.median() > 50  # a heavy tail
    months = e.event_time.dt.month
    assert (months == 12).mean() > 1.5 / 12  # seasonality
    year = e.event_time.dt.year
    mobile = e.channel.eq("mobile").groupby(year).mean()
    assert mobile.iloc[-1] > mobile.iloc[0] + 0.25  # the channel mix drifts
    merged = e.merge(c, on="customer_id")
    buy = merged.event_type.eq("purchase").groupby(merged.segment).mean()
    assert buy["enterprise"] > buy["consumer"] + 0.08  # events depend on the subject
    signup = merged.signup_date.astype("datetime64[ns]")
    assert (merged.event_time >= signup).all()
    again = simulate_log(spark, 3000, seed=5, mean_events=12, partitions=7)[1].toPandas()
    key = ["customer_id", "event_time", "event_type", "channel"]
    pd.testing.assert_frame_equal(e.sort_values(key).reset_index(drop=True),
                                  again.sort_values(key).reset_index(drop=True))
