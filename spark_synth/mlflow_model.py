"""The generator as an MLflow pyfunc, logged as "model from code": nothing is pickled.

``predict`` takes a DataFrame with a ``rows`` column (and optionally ``seed``) and returns that
many synthetic rows per input row, in the training schema. For an event-log generator ``rows``
counts subjects, and the result is their events joined to the subject attributes (one table).
A flat-table request may instead hold seed rows (some of the generated columns): one synthetic
row per seed row, its values kept. Sampling controls come as params: ``temperature``, ``top_p``,
``rebalance`` with ``shares`` (JSON: value -> share), ``fair_target`` with ``fair_sensitive``, and
``seed`` for seeded requests.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class GeneratorModel(PythonModel):
    def load_context(self, context) -> None:
        from spark_synth.log_generator import load_any

        self.generator = load_any(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from spark_synth.generator import Generator

        params = params or {}
        flat = isinstance(self.generator, Generator)
        controls = _controls(params)
        seeded = [c for c in model_input.columns if flat and c in self.generator.codec.column_names]
        if seeded:
            seed_rows = model_input[seeded].dropna(how="all")
            return self.generator.sample_seeded(seed_rows, seed=int(params.get("seed", 0)), controls=controls)
        frames = []
        for request in model_input.to_dict("records"):
            rows = int(request["rows"]) if pd.notna(request.get("rows")) else 1
            seed = int(request["seed"]) if pd.notna(request.get("seed")) else 0
            sample = self.generator.sample(rows, seed=seed, controls=controls)
            if isinstance(sample, tuple):
                from spark_synth.log_generator import denormalized

                sample = denormalized(*sample, self.generator.sequence)
            frames.append(sample)
        return pd.concat(frames, ignore_index=True)


def _controls(params: dict):
    import json

    from spark_synth.controls import Controls

    shares = params.get("shares") or ""
    return Controls(float(params.get("temperature", 1.0)), float(params.get("top_p", 1.0)),
                    params.get("rebalance") or None, json.loads(shares) if shares else {},
                    params.get("fair_target") or None, params.get("fair_sensitive") or None)


mlflow.models.set_model(GeneratorModel())
