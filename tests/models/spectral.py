"""Shared by the spectral-mask model tests: a model with non-trivial input statistics and BatchNorm state."""
from __future__ import annotations

import torch
from torch import nn

from hushkit.models import build_model


def prepared_model(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    model.set_input_stats(0.3 * torch.randn(model.n_bins), 0.5 + torch.rand(model.n_bins))
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        model(0.1 * torch.randn(3, 6000))
    return model.eval()
