"""The model library: every denoiser maps a noisy waveform (B, T) to an enhanced one of the same shape; every tagger
maps a waveform (B, T) to clip-level label logits (B, C).

Importing this package registers every architecture; ``build_model(name, **args)`` makes one,
``save_checkpoint`` / ``load_checkpoint`` round-trip it through a self-describing file. ``available_models()`` lists
the denoisers, ``available_models("tagger")`` the taggers.
"""
from __future__ import annotations

# Every architecture, one module each: importing it registers the model under its name (adding a model is adding
# a module and its line here).
from hushkit.models import autoencoder, convtasnet, crced, crnn, densenet, gtcrn, segan  # noqa: F401
from hushkit.models import gcnn, tagcnn  # noqa: F401  (taggers)
from hushkit.models.base import (Denoiser, FilterbankDenoiser, Model, SpectralMaskDenoiser, available_models,
                                  build_model, capture_init, register_model)
from hushkit.models.checkpoint import load_checkpoint, save_checkpoint
from hushkit.models.tagger import Tagger

__all__ = [
    "Denoiser",
    "FilterbankDenoiser",
    "Model",
    "SpectralMaskDenoiser",
    "Tagger",
    "available_models",
    "build_model",
    "capture_init",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]
