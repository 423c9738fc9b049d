"""The model library: every architecture maps a noisy waveform (B, T) to an enhanced one of the same shape.

Importing this package registers every architecture; ``build_model(name, **args)`` makes one,
``save_checkpoint`` / ``load_checkpoint`` round-trip it through a self-describing file.
"""
from __future__ import annotations

# Every architecture, one module each: importing it registers the model under its name (adding a model is adding
# a module and its line here).
from hushkit.models import autoencoder, convtasnet, crced, crnn, densenet, gtcrn, segan  # noqa: F401
from hushkit.models.base import (Denoiser, FilterbankDenoiser, SpectralMaskDenoiser, available_models, build_model,
                                  capture_init, register_model)
from hushkit.models.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "Denoiser",
    "FilterbankDenoiser",
    "SpectralMaskDenoiser",
    "available_models",
    "build_model",
    "capture_init",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]
