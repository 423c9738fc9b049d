"""The MLflow pyfunc flavour of a hushkit model: what the registry holds and `mlflow models serve` runs."""
from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd


class HushkitDenoiser(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with an `audio` column, each cell a list of float samples at the model's rate.
    Output: the same frame shape with the enhanced samples."""

    def load_context(self, context) -> None:
        from hushkit.inference import load_enhancer

        self.enhancer = load_enhancer(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        audio = model_input["audio"]
        return pd.DataFrame({"audio": [self.enhancer(np.asarray(x, dtype=np.float32)).tolist() for x in audio]})
