"""hushkit: speech-denoising MLOps, from corpora to a promoted, exported model."""
from __future__ import annotations

import os

__version__ = "0.1.0"

# No network here and no wish to phone home: silence every tool's telemetry before it is imported.
for _key, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}.items():
    os.environ.setdefault(_key, _value)
