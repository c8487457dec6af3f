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
    def load_context(self, context) -> None:
        from spark_synth.generators.kinds import load_directory

        self.generator = load_directory(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from spark_synth.generators.event_log import denormalized
        from spark_synth.generators.flat import FlatGenerator

        params = params or {}
        controls = _controls(params)
        if isinstance(self.generator, FlatGenerator):
            seeded = [c for c in model_input.columns if c in self.generator.codec.column_names]
            if seeded:
                seed_rows = model_input[seeded].dropna(how="all")
                _refuse_over_cap(len(seed_rows), f"{len(seed_rows):,} seed rows (one synthetic row each)")
                return self.generator.sample_seeded(seed_rows, seed=int(params.get("seed", 0)), controls=controls)
        elif set(model_input.columns) - {"rows", "seed"}:
            subjects, events = self._seeded_log(model_input, int(params.get("seed", 0)), controls)
            return denormalized(subjects, events, self.generator.sequence)
        requested = pd.to_numeric(model_input.get("rows", pd.Series([1] * len(model_input))), errors="coerce")
        total = int(requested.fillna(1).clip(lower=0).sum())
        if isinstance(self.generator, FlatGenerator):
            _refuse_over_cap(total, f"{total:,} rows")
        else:
            self._refuse_log_over_cap(total, "subjects")
        frames = []
        for request in model_input.to_dict("records"):
            rows = int(request["rows"]) if pd.notna(request.get("rows")) else 1
            seed = int(request["seed"]) if pd.notna(request.get("seed")) else 0
            sample = self.generator.sample(rows, seed=seed, controls=controls)
            if isinstance(sample, tuple):
                sample = denormalized(*sample, self.generator.sequence)
            frames.append(sample)
        return pd.concat(frames, ignore_index=True)

    def _seeded_log(self, model_input: pd.DataFrame, seed: int, controls):
        """Seed subjects, and with ``event.*`` columns their first events, from one denormalised request."""
        key, fk = self.generator.sequence["subject_key"], self.generator.sequence["foreign_key"]
        event_columns = [c for c in model_input.columns if c.startswith("event.")]
        subject_columns = [c for c in model_input.columns if c not in event_columns and c not in ("rows", "seed")]
        _refuse_over_cap(len(model_input), f"{len(model_input):,} seed rows")
        if not event_columns:
            self._refuse_log_over_cap(len(model_input), "seed subjects")
            return self.generator.sample_seeded(model_input[subject_columns], seed, controls)
        if key not in model_input.columns:
            from spark_synth.errors import SynthError

            raise SynthError(f"seed events need the subject key '{key}' to link each event row to its subject.",
                             f"Add '{key}' to every row of the request.")
        subjects = model_input[subject_columns].drop_duplicates(key)
        self._refuse_log_over_cap(len(subjects), "seed subjects")
        rows = model_input[model_input[event_columns].notna().any(axis=1)]
        events = rows[[key, *event_columns]].rename(columns={key: fk, **{c: c[len("event."):] for c in event_columns}})
        return self.generator.sample_seeded(subjects, seed, controls, seed_events=events)

    def _refuse_log_over_cap(self, subjects: int, what: str) -> None:
        """Refuse, before any sampling, an event-log request whose answer could pass the cap. The answer has one
        row per event (one for a subject without events) and no subject gets more events than the generator's
        protected maximum sequence length, so ``subjects * max_length`` bounds it whatever is drawn; checking
        the rows actually drawn would come after they already fill memory."""
        max_length = max(1, int(self.generator.sequence["max_length"]))
        limit = max_request_rows()
        if subjects * max_length > limit:
            _refuse(f"the request asks for {subjects:,} {what}; with up to {max_length} events each (the "
                    f"generator's maximum sequence length) the answer could hold {subjects * max_length:,} rows, "
                    f"and one request may return at most {limit:,} rows ({limit // max_length:,} subjects).",
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
