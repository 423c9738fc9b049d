"""hushkit: speech-denoising MLOps, from corpora to a promoted, exported model.

The Python API, for enhancing audio with a model the pipeline trained (or any hushkit export)::

    from hushkit import load_enhancer, enhance_file

    enhance_file("noisy.wav", "clean.wav", model="data/train/gtcrn/model.pt")
    denoise = load_enhancer("data/export/gtcrn/model.onnx")   # load once, then call on arrays or many files
    clean = denoise(audio)                                     # float32 at denoise.sample_rate

`load_enhancer` and `enhance_file` are imported on first use, so `import hushkit` stays cheap (no torch).
"""
from __future__ import annotations

import importlib
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

# The public API: name → the module that defines it, imported when the name is first used (module __getattr__).
_EXPORTS = {
    "Enhancer": "hushkit.inference",
    "load_enhancer": "hushkit.inference",
    "enhance_file": "hushkit.enhance",
}
# (No `if TYPE_CHECKING:` imports of them here: every pipeline stage imports this package, and tests/test_dvc_deps.py
# counts every import in a stage's closure as a dependency of that stage.)
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hushkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
