"""Per-layer gradient norms as a training hook (`train.grad_norms`).

The Trainer logs the whole model's gradient norm; a part of the model can stop learning while that figure looks
healthy. The classic case is a recurrent layer whose gradients vanish over a long sequence (a gated CNN tagger's
GRU has been seen to fade to zero over training while its convolutions kept learning). This hook measures, after
every backward pass and before clipping, the gradient norm of each layer (each module that owns parameters
itself, named by its path in the model) and of all recurrent layers (GRU, LSTM, RNN) together, and reports each
epoch's means:

* with `per_layer`, as metrics: ``grad_norm.<layer>`` for every layer and ``grad_norm_recurrent``;
* with `recurrent_min` > 0, a warning when the recurrent layers' epoch mean falls below it.

Measuring costs one norm per parameter tensor per step, accumulated on the training device (no synchronisation
until the epoch ends).
"""
from __future__ import annotations

import torch
from torch import nn

from hushkit.config.train import GradNormParams
from hushkit.training.hooks import TrainingHook

RECURRENT = (nn.RNNBase,)


def parameter_layers(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """layer name → the trainable parameters it owns itself (not its children's), for every module that owns some;
    the model itself, if it owns any, is `(model)`."""
    layers = {}
    for name, module in model.named_modules():
        owned = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if owned:
            layers[name or "(model)"] = owned
    return layers


def recurrent_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for module in model.modules() if isinstance(module, RECURRENT) for p in module.parameters()
            if p.requires_grad]


class LayerGradientNorms(TrainingHook):
    key = "grad_norms"

    @classmethod
    def for_model(cls, model: nn.Module, settings: GradNormParams) -> "LayerGradientNorms | None":
        """The hook when `settings` asks for something `model` has: per-layer norms, or a recurrent warning for a
        model with recurrent layers; None otherwise."""
        wants_warning = settings.recurrent_min > 0 and bool(recurrent_parameters(model))
        return cls(model, settings) if settings.per_layer or wants_warning else None

    def __init__(self, model: nn.Module, settings: GradNormParams):
        self.settings = settings
        self.layers = parameter_layers(model) if settings.per_layer else {}
        self.recurrent = recurrent_parameters(model)
        self.recurrent_mean: float | None = None  # the last finished epoch's
        self._reset()

    def _reset(self) -> None:
        self.steps = 0
        self.layer_sums: torch.Tensor | None = None
        self.recurrent_sum: torch.Tensor | None = None

    def on_epoch_start(self, epoch: int) -> None:
        self._reset()

    @staticmethod
    def _norm(parameters: list[nn.Parameter]) -> torch.Tensor:
        """The L2 norm of the parameters' gradients together (a missing gradient counts as zero)."""
        squares = [p.grad.detach().float().pow(2).sum() for p in parameters if p.grad is not None]
        if not squares:
            return torch.zeros((), device=parameters[0].device)
        return torch.stack(squares).sum().sqrt()

    @torch.no_grad()
    def on_gradients(self, model: nn.Module) -> None:
        if self.layers:
            norms = torch.stack([self._norm(params) for params in self.layers.values()])
            self.layer_sums = norms if self.layer_sums is None else self.layer_sums + norms
        if self.recurrent:
            norm = self._norm(self.recurrent)
            self.recurrent_sum = norm if self.recurrent_sum is None else self.recurrent_sum + norm
        self.steps += 1

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, float]:
        if not self.steps:
            self.recurrent_mean = None
            return {}
        self.recurrent_mean = float(self.recurrent_sum) / self.steps if self.recurrent_sum is not None else None
        if not self.settings.per_layer:
            return {}
        metrics = {}
        if self.layer_sums is not None:
            means = (self.layer_sums / self.steps).cpu().tolist()
            metrics = {f"grad_norm.{name}": value for name, value in zip(self.layers, means)}
        if self.recurrent_mean is not None:
            metrics["grad_norm_recurrent"] = self.recurrent_mean
        return metrics

    def describe(self, metrics: dict[str, float]) -> str:
        value = metrics.get("grad_norm_recurrent")
        return f"  rnn-grad {value:.2e}" if value is not None else ""

    def warnings(self, epoch: int, metrics: dict[str, float]) -> list[str]:
        value, floor = self.recurrent_mean, self.settings.recurrent_min
        if value is None or not floor or not value < floor:
            return []
        return [f"the recurrent layers' mean gradient norm {value:.2e} is below train.grad_norms.recurrent_min "
                f"({floor:g}): their gradients are vanishing and they have stopped learning"]
