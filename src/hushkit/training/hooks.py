"""Training hooks: the optional pieces of training (weight averaging, the adversarial discriminator step, mixed
precision, per-layer gradient norms) that plug into the Trainer's one path instead of branching it.

Every optimizer step the Trainer runs, in this order (each method's default does nothing):

    forward_context()              around the model's forward pass (autocast)
    on_step(loss, batch)           → the loss to minimise; a hook may add a term (the adversarial one)
    backward(loss, optimizer)      the first hook that returns True ran the backward pass (loss scaling) and left
                                   true gradients; otherwise loss.backward()
    on_gradients(model)            the true gradients, before clipping (per-layer gradient norms)
    step_optimizer(optimizer)      the first that returns True stepped the optimizer; otherwise optimizer.step()
    after_step(model)              after the LR schedule's step (an exponential moving average)

and every epoch `on_epoch_start(epoch)`, then `on_epoch_end(epoch, model)`, whose figures join the epoch's metrics
(`describe` adds them to the epoch's line; `warnings(epoch, metrics)` are said as warnings after it).
`lr_scheduler` takes over the LR schedule while set (SWA's SWALR); `averaged_model()` is validated and kept instead
of the trained weights when set. `notes(epochs)` are said once
before training. A hook's `state_dict()` is saved under its `key` in the resumable state and restored by
`load_state_dict` before the optimizer's own state (which then restores the LR exactly). Under torchrun every
process runs every hook alike on identical weights; a hook that cannot says so in `not_distributed`.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, NamedTuple

import torch


class Batch(NamedTuple):
    """One training step's batch. A tagger's: noisy = the waveforms, clean = the multi-hot targets, enhanced = the
    logits."""

    noisy: torch.Tensor
    clean: torch.Tensor
    enhanced: torch.Tensor  # the model's output, float32


class TrainingHook:
    key: str = ""  # its name in Trainer.hooks and in the resumable state
    # Set (naming the setting, "train.x: what") by a hook that cannot train under torchrun: the Trainer refuses it.
    not_distributed: str = ""

    def notes(self, epochs: int) -> list[str]:
        return []

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def forward_context(self) -> ContextManager:
        return contextlib.nullcontext()

    def on_step(self, loss: torch.Tensor, batch: Batch) -> torch.Tensor:
        return loss

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
        return False

    def on_gradients(self, model: torch.nn.Module) -> None:
        pass

    def step_optimizer(self, optimizer: torch.optim.Optimizer) -> bool:
        return False

    def after_step(self, model: torch.nn.Module) -> None:
        pass

    @property
    def lr_scheduler(self) -> Any:
        return None

    def on_epoch_end(self, epoch: int, model: torch.nn.Module) -> dict[str, float]:
        return {}

    def describe(self, metrics: dict[str, float]) -> str:
        return ""

    def warnings(self, epoch: int, metrics: dict[str, float]) -> list[str]:
        return []

    def averaged_model(self) -> torch.nn.Module | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
