"""The per-layer gradient-norm hook on its own: layers, the recurrent total, and the vanishing-gradient warning."""
from __future__ import annotations

import pytest
import torch

from hushkit.config.train import GradNormParams
from hushkit.training.gradients import LayerGradientNorms, parameter_layers, recurrent_parameters


def test_layers_are_the_modules_that_own_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.GRU(3, 2))
    layers = parameter_layers(model)
    assert list(layers) == ["0", "2"] and len(layers["2"]) == 4  # the GRU's two weights and two biases
    assert recurrent_parameters(model) == layers["2"]
    assert LayerGradientNorms.for_model(torch.nn.Linear(2, 2), GradNormParams()) is None  # nothing to watch


class FadingRecurrent(torch.nn.Module):
    """A linear path and a GRU path whose contribution is scaled down to almost nothing: its gradients vanish."""

    def __init__(self, fade: float):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.rnn = torch.nn.GRU(4, 3, batch_first=True)
        self.fade = fade

    def forward(self, x):
        return self.linear(x).sum() + self.fade * self.rnn(x)[0].sum()


@pytest.mark.parametrize("fade, warned", [(1e-9, True), (1.0, False)])
def test_vanishing_recurrent_gradients_are_told_apart_from_the_rest(fade, warned):
    torch.manual_seed(0)
    model = FadingRecurrent(fade)
    hook = LayerGradientNorms.for_model(model, GradNormParams(per_layer=True, recurrent_min=1e-4))
    hook.on_epoch_start(1)
    for _ in range(3):
        model.zero_grad()
        model(torch.randn(2, 5, 4)).backward()
        hook.on_gradients(model)
    metrics = hook.on_epoch_end(1, model)
    assert metrics["grad_norm.linear"] > 1  # the rest of the model learns: its norm alone would not tell
    assert (metrics["grad_norm_recurrent"] < 1e-4) == warned
    assert bool(hook.warnings(1, metrics)) == warned
    hook.on_epoch_start(2)
    assert hook.on_epoch_end(2, model) == {} and hook.warnings(2, {}) == []  # no step, nothing to say
