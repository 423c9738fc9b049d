"""MLflow plumbing: one place decides the tracking URI and experiment, so every stage logs to the same store."""
from __future__ import annotations

import os
from typing import Any

DEFAULT_URI = "sqlite:///mlflow.db"


def tracking_uri(section: dict[str, Any]) -> str:
    """MLFLOW_TRACKING_URI (env) wins over params, so CI and users can point at a server without editing params."""
    return os.environ.get("MLFLOW_TRACKING_URI") or section.get("tracking_uri") or DEFAULT_URI


def setup(section: dict[str, Any]):
    """Configure mlflow for this process and return the module (imported lazily: it costs seconds)."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri(section)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(section.get("experiment", "hushkit"))
    return mlflow


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params → dotted keys, as MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
