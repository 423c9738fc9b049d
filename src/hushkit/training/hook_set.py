"""The set of training hooks a configuration turns on (hushkit.training.hooks describes the hook protocol). Its own
module, above the hooks it builds, so that the hook modules import the protocol and nothing imports back."""
from __future__ import annotations

import torch

from hushkit.config import TrainConfig
from hushkit.training.adversarial import AdversarialHook
from hushkit.training.averaging import ExponentialAverage, StochasticWeightAverage
from hushkit.training.gradients import LayerGradientNorms
from hushkit.training.hooks import TrainingHook
from hushkit.training.precision import precision_hooks


def training_hooks(model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig,
                   device: torch.device) -> dict[str, TrainingHook]:
    """The hooks `config` turns on for `model`, by key: mixed precision (`mixed_precision`), the gradient norms of
    each layer or of the recurrent ones (`grad_norms`), the exponential moving average (`ema_decay`), stochastic
    weight averaging (`swa.start_epoch`), and the adversarial step for a model with a discriminator
    (`adversarial.weight`)."""
    hooks: list[TrainingHook] = [*precision_hooks(config.mixed_precision, device)]
    gradients = LayerGradientNorms.for_model(model, config.grad_norms)
    if gradients is not None:
        hooks.append(gradients)
    if config.ema_decay > 0:
        hooks.append(ExponentialAverage(model, config.ema_decay))
    if config.swa.start_epoch:
        hooks.append(StochasticWeightAverage(model, optimizer, config.swa, config.steps_per_epoch))
    # Built last, with the model on its device: the discriminator's initial weights draw from torch's generator.
    adversarial = AdversarialHook.for_model(model, config.adversarial) if config.adversarial.weight > 0 else None
    if adversarial is not None:
        hooks.append(adversarial)
    return {hook.key: hook for hook in hooks}
