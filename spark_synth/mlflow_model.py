"""The generator as an MLflow pyfunc, logged as "model from code": nothing is pickled.

``predict`` takes a DataFrame with a ``rows`` column (and optionally ``seed``) and returns that
many synthetic rows per input row, in the training schema.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class GeneratorModel(PythonModel):
    def load_context(self, context) -> None:
        from spark_synth.generator import Generator

        self.generator = Generator.load(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frames = []
        for request in model_input.to_dict("records"):
            rows = int(request.get("rows", 1))
            seed = int(request["seed"]) if pd.notna(request.get("seed")) else 0
            frames.append(self.generator.sample(rows, seed=seed))
        return pd.concat(frames, ignore_index=True)


mlflow.models.set_model(GeneratorModel())
