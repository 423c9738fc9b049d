"""hushkit: speech-denoising MLOps, from corpora to a promoted, exported model."""
from __future__ import annotations

import os

__version__ = "0.1.0"

# No wish to phone home: every tool's telemetry off, set before any of them is imported. The one list: whatever
# imports hushkit (stages, flows, their subprocesses) inherits it; the Makefile exports the same for the DVC and
# Prefect command lines it runs (a test checks the two agree).
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
}
for _key, _value in {**TELEMETRY_OFF, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}.items():
    os.environ.setdefault(_key, _value)
