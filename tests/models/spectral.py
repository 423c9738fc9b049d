"""Shared by the model tests: models with non-trivial input statistics and BatchNorm state, as after training."""
from __future__ import annotations

import torch
from torch import nn

from hushkit.models import SpectralMaskDenoiser, build_model


def prepared_model(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    model.set_input_stats(0.3 * torch.randn(model.n_bins), 0.5 + torch.rand(model.n_bins))
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        model(0.1 * torch.randn(3, 6000))
    return model.eval()


def trained_like(name: str) -> nn.Module:
    """Any registered architecture with its default arguments, prepared on noise, shifted input statistics (spectral
    models) and BatchNorm running statistics: what the export tests compare against torch."""
    torch.manual_seed(0)
    model = build_model(name)
    model.prepare(0.1 * torch.randn(2, 8000))
    if isinstance(model, SpectralMaskDenoiser):
        model.set_input_stats(model.input_mean + 0.1, model.input_std * 1.5)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(0.1 * torch.randn(4, 8000))
    return model.eval()
