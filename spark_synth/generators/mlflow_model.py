"""The generator as an MLflow pyfunc, logged as "model from code": nothing is pickled.

``predict`` takes a DataFrame with a ``rows`` column (and optionally ``seed``) and returns that
many synthetic rows per input row, in the training schema. For an event-log generator ``rows``
counts subjects, and the result is their events joined to the subject attributes (one table).
A request may instead hold seed rows (some of the generated columns): one synthetic row (or
subject) per seed row, its values kept. An event-log seed may also give each subject's first
events in the shape of the output: ``event.<column>`` columns, one row per event, the subject key
linking a subject's rows (its attribute columns repeated, as in the output). Sampling controls come as params: ``temperature``, ``top_p``,
``rebalance`` with ``shares`` (JSON: value -> share), ``fair_target`` with ``fair_sensitive``, and
``seed`` for seeded requests.

One request returns at most ``SPARK_SYNTH_MAX_REQUEST_ROWS`` rows (default 100,000), events included, seeded
or not; it is refused before anything is sampled. An event-log request is judged by its worst case, subjects
times the generator's (protected) maximum sequence length, since that is known before sampling.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class GeneratorModel(PythonModel):
    """Any generator kind through its serving contract (``serving_seed``, ``seed_units``, ``sample_table``,
    ``sample_seeded_table``, ``max_rows_per_unit``): one table per request."""

    def load_context(self, context) -> None:
        from spark_synth.generators.kinds import load_directory

        self.generator = load_directory(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = params or {}
        controls = _controls(params)
        generator = self.generator
        seed_rows = generator.serving_seed(model_input)
        if seed_rows is not None:
            _refuse_over_cap(len(seed_rows), f"{len(seed_rows):,} seed rows")
            self._refuse_units_over_cap(generator.seed_units(seed_rows), f"seed {generator.unit}")
            return generator.sample_seeded_table(seed_rows, int(params.get("seed", 0)), controls)
        requested = pd.to_numeric(model_input.get("rows", pd.Series([1] * len(model_input))), errors="coerce")
        self._refuse_units_over_cap(int(requested.fillna(1).clip(lower=0).sum()), generator.unit)
        frames = []
        for request in model_input.to_dict("records"):
            rows = int(request["rows"]) if pd.notna(request.get("rows")) else 1
            seed = int(request["seed"]) if pd.notna(request.get("seed")) else 0
            frames.append(generator.sample_table(rows, seed, controls))
        return pd.concat(frames, ignore_index=True)

    def _refuse_units_over_cap(self, units: int, what: str) -> None:
        """Refuse, before any sampling, a request whose answer could pass the cap. No unit adds more than
        ``max_rows_per_unit`` rows (an event-log subject: one row per event, at most the protected maximum
        sequence length), so ``units * max_rows_per_unit`` bounds the answer whatever is drawn; checking the
        rows actually drawn would come after they already fill memory."""
        per_unit = self.generator.max_rows_per_unit
        limit = max_request_rows()
        if per_unit == 1:
            _refuse_over_cap(units, f"{units:,} {what}")
        elif units * per_unit > limit:
            _refuse(f"the request asks for {units:,} {what}; with up to {per_unit} events each (the "
                    f"generator's maximum sequence length) the answer could hold {units * per_unit:,} rows, "
                    f"and one request may return at most {limit:,} rows ({limit // per_unit:,} subjects).",
                    "ask for fewer subjects per request (split it)")


MAX_ROWS_ENV = "SPARK_SYNTH_MAX_REQUEST_ROWS"


def max_request_rows() -> int:
    """Rows one request may return (events included): a serving process holds the whole answer in memory."""
    import os

    return int(os.environ.get(MAX_ROWS_ENV, 100_000))


def _refuse_over_cap(rows: int, what: str) -> None:
    """Refuse a request that would return more rows than the cap, before any sampling."""
    if rows > max_request_rows():
        _refuse(f"the request asks for {what}; one request may return at most {max_request_rows():,} rows.",
                "split it")


def _refuse(problem: str, fix: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    raise MlflowException(f"{problem} Fix: {fix}, generate large tables with `spark-synth generate`, or raise "
                          f"{MAX_ROWS_ENV} on the server.", INVALID_PARAMETER_VALUE)


def _controls(params: dict):
    import json

    from spark_synth.generators.controls import Controls

    shares = params.get("shares") or ""
    return Controls(float(params.get("temperature", 1.0)), float(params.get("top_p", 1.0)),
                    params.get("rebalance") or None, json.loads(shares) if shares else {},
                    params.get("fair_target") or None, params.get("fair_sensitive") or None)


mlflow.models.set_model(GeneratorModel())
