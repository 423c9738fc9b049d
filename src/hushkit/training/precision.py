"""Mixed precision as training hooks: the model's forward pass under autocast and, for float16, loss scaling
against underflowing gradients. Losses, the discriminator, validation and the weights (and so the optimizer,
EMA/SWA and checkpoints) stay float32; bfloat16 has float32's range and needs no scaling."""
from __future__ import annotations

from typing import Any, ContextManager

import torch

from hushkit.config.train import PRECISIONS
from hushkit.training.hooks import TrainingHook


def autocast_dtype(setting: str | bool | None, device: torch.device) -> torch.dtype | None:
    """The lower precision the model's forward pass runs in under autocast, or None for plain float32.

    `train.common.mixed_precision` (default `auto`): `auto` (or YAML true) is bfloat16 on a CUDA device that has it,
    float16 (with loss scaling) on an older CUDA one, and float32 anywhere else, so the same params train on CPU
    exactly as in float32; `bf16` / `fp16` force that precision (also on CPU, where they are slow: for tests);
    `fp32` (or YAML false / off) turns it off."""
    if setting is None or setting is False or setting == "fp32":
        return None
    if setting is True or setting == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting == "bf16":
        return torch.bfloat16
    if setting == "fp16":
        return torch.float16
    raise ValueError(f"train: mixed_precision must be one of {list(PRECISIONS)} (or true/false), got {setting!r}")


class Autocast(TrainingHook):
    """The model's forward pass in `dtype` (the Trainer casts its output back to float32 for the losses)."""

    key = "autocast"

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device_type, self.dtype = device.type, dtype

    def forward_context(self) -> ContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype)


class LossScaling(TrainingHook):
    """float16's loss scaling: the backward pass of the scaled loss, gradients unscaled before clipping (so the
    logged norm is the true one), and an optimizer step that is skipped (and the scale lowered) when a gradient
    overflowed."""

    key = "grad_scaler"

    def __init__(self, device: torch.device):
        self.scaler = torch.amp.GradScaler(device.type)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        return True

    def step_optimizer(self, optimizer: torch.optim.Optimizer) -> bool:
        self.scaler.step(optimizer)
        self.scaler.update()
        return True

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scaler.load_state_dict(state)


def precision_hooks(setting: str | bool | None, device: torch.device) -> list[TrainingHook]:
    """The hooks `mixed_precision` asks for on `device`: none for float32."""
    dtype = autocast_dtype(setting, device)
    if dtype is None:
        return []
    return [Autocast(device, dtype), *([LossScaling(device)] if dtype == torch.float16 else [])]
