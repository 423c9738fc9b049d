"""The model library: every architecture maps a noisy waveform (B, T) to an enhanced one of the same shape.

Importing this package registers every architecture; ``build_model(name, **args)`` makes one,
``save_checkpoint`` / ``load_checkpoint`` round-trip it through a self-describing file.
"""
from __future__ import annotations

import importlib
import pkgutil

from hushkit.models.base import Denoiser, SpectralMaskDenoiser, available_models, build_model, register_model
from hushkit.models.checkpoint import load_checkpoint, save_checkpoint

# Every module of this package that is not infrastructure defines (and registers) one architecture:
# adding a model is adding a file.
_INFRASTRUCTURE = {"base", "checkpoint", "complexity", "onnx_export", "stft", "torchscript_export"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Denoiser",
    "SpectralMaskDenoiser",
    "available_models",
    "build_model",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]
