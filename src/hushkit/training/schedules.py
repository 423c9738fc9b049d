"""Learning-rate schedules, all stepped once per optimizer step (so a resumed run continues mid-epoch exactly).

* ``constant``: the base LR throughout.
* ``cosine``: cosine decay from the base LR to 0 over the whole run.
* ``step``: the base LR times ``step_gamma`` every ``step_every_epochs`` epochs.
* ``onecycle``: torch's OneCycleLR peaking at the base LR after ``onecycle_pct_start`` of the run.

``warmup_steps`` ramps the LR linearly up over the first steps, on top of constant, cosine and step; onecycle has
its own warm-up, so it refuses one.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

SCHEDULES = ("constant", "cosine", "step", "onecycle")


def check_schedule(name: str, warmup_steps: int) -> None:
    if name not in SCHEDULES:
        raise ValueError(f"train: schedule.name {name!r} is unknown; known: {list(SCHEDULES)}")
    if name == "onecycle" and warmup_steps:
        raise ValueError("train: schedule.warmup_steps must be 0 with onecycle, which warms up by itself "
                         "(see schedule.onecycle_pct_start)")


def make_scheduler(optimizer: torch.optim.Optimizer, config) -> LRScheduler:
    """The schedule `config` (a TrainConfig) names, for `config.epochs * config.steps_per_epoch` steps."""
    check_schedule(config.schedule, config.warmup_steps)
    total = max(1, config.epochs * config.steps_per_epoch)
    if config.schedule == "onecycle":
        return OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=config.onecycle_pct_start)
    decay = _decay(config, total)
    warmup = config.warmup_steps
    if not warmup:
        return LambdaLR(optimizer, decay)
    # The first step already trains at lr / warmup: a zero-LR step would be wasted work.
    return LambdaLR(optimizer, lambda step: decay(step) * min(1.0, (step + 1) / warmup))


def _decay(config, total: int) -> Callable[[int], float]:
    """The LR multiplier after `step` optimizer steps, without warm-up."""
    if config.schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if config.schedule == "step":
        period = config.step_every_epochs * config.steps_per_epoch
        return lambda step: config.step_gamma ** (step // period)
    return lambda step: 1.0
