"""The generator as an MLflow pyfunc, logged as "model from code": nothing is pickled.

``predict`` takes a DataFrame with a ``rows`` column (and optionally ``seed``) and returns that
many synthetic rows per input row, in the training schema. For an event-log generator ``rows``
counts subjects, and the result is their events joined to the subject attributes (one table).
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
        frames = []
        for request in model_input.to_dict("records"):
            rows = int(request.get("rows", 1))
            seed = int(request["seed"]) if pd.notna(request.get("seed")) else 0
            sample = self.generator.sample(rows, seed=seed)
            if isinstance(sample, tuple):
                from spark_synth.log_generator import denormalized

                sample = denormalized(*sample, self.generator.sequence)
            frames.append(sample)
        return pd.concat(frames, ignore_index=True)


mlflow.models.set_model(GeneratorModel())
