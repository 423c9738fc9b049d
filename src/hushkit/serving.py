"""The MLflow pyfunc flavour of a hushkit model: what the registry holds and `mlflow models serve` runs.

A logged model serves in an environment of its own (MLflow's default, `--env-manager virtualenv`, or `uv`), not
only in hushkit's (`--env-manager local`): it carries hushkit's code (code/hushkit, put on the path when loaded), so
its requirements are only what the inference path imports, pinned to the versions it was logged with; and a
signature and an input example, so a server checks requests and a user sees what to send."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

# The distributions hushkit.inference and hushkit.models import (mlflow adds itself). A served model's environment
# is built from these alone: tests/test_serving.py serves a model in such an environment.
SERVING_DISTRIBUTIONS = ("torch", "numpy", "pandas", "soundfile")
EXAMPLE_SAMPLES = 1600   # the input example: 0.1 s at 16 kHz


class HushkitDenoiser(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with an `audio` column, each cell a list of float samples at the model's rate.
    Output: the same frame shape with the enhanced samples."""

    def load_context(self, context) -> None:
        from hushkit.inference import load_enhancer

        self.enhancer = load_enhancer(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        audio = model_input["audio"]
        return pd.DataFrame({"audio": [self.enhancer(np.asarray(x, dtype=np.float32)).tolist() for x in audio]})


def requirements() -> list[str]:
    """SERVING_DISTRIBUTIONS pinned to this environment's versions, less any local label (`2.13.0+cpu` is pinned as
    `2.13.0`: the serving host's pip picks the build for its hardware, CUDA or CPU)."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in SERVING_DISTRIBUTIONS]


def signature():
    """One `audio` column of number arrays in, the same out (doubles: what JSON numbers parse to; the model runs in
    float32)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    audio = Schema([ColSpec(Array(DataType.double), "audio")])
    return ModelSignature(inputs=audio, outputs=audio)


def input_example() -> pd.DataFrame:
    """A request's shape: one clip of quiet noise (fixed, so every logged model carries the same example)."""
    clip = 0.01 * np.random.default_rng(0).standard_normal(EXAMPLE_SAMPLES)
    return pd.DataFrame({"audio": [clip.tolist()]})


def log_model(artifacts: dict[str, str], registered_model_name: str | None = None) -> Any:
    """Log the pyfunc model (`artifacts` must hold the `checkpoint`) to the active run, with hushkit's code, its
    requirements, signature and input example; registered as a new version of `registered_model_name` if given.
    Returns MLflow's ModelInfo."""
    import shutil
    import tempfile

    import hushkit

    with tempfile.TemporaryDirectory() as tmp:
        code = shutil.copytree(Path(hushkit.__file__).parent, Path(tmp) / "hushkit",
                               ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return mlflow.pyfunc.log_model(
            name="model", python_model=HushkitDenoiser(), artifacts=artifacts, code_paths=[str(code)],
            pip_requirements=requirements(), signature=signature(), input_example=input_example(),
            registered_model_name=registered_model_name)
