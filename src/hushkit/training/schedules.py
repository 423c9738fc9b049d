"""Learning-rate schedules, all stepped once per optimizer step (so a resumed run continues mid-epoch exactly).

* ``constant``: the base LR throughout.
* ``cosine``: cosine decay from the base LR to 0 over the whole run.
* ``step``: the base LR times ``step_gamma`` every ``step_every_epochs`` epochs.
* ``onecycle``: torch's OneCycleLR peaking at the base LR after ``onecycle_pct_start`` of the run.

``warmup_steps`` ramps the LR linearly up over the first steps, on top of constant, cosine and step; onecycle has
its own warm-up, so the schema (hushkit.config.train.LrSchedule) refuses one with it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from hushkit.config.train import SCHEDULES, TrainConfig

def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> LRScheduler:
    """The schedule `config.schedule` names, for `config.epochs * config.steps_per_epoch` steps."""
    schedule = config.schedule
    total = max(1, config.epochs * config.steps_per_epoch)
    if schedule.name == "onecycle":
        return OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=schedule.onecycle_pct_start)
    decay = _decay(config, total)
    warmup = schedule.warmup_steps
    if not warmup:
        return LambdaLR(optimizer, decay)
    # The first step already trains at lr / warmup: a zero-LR step would be wasted work.
    return LambdaLR(optimizer, lambda step: decay(step) * min(1.0, (step + 1) / warmup))


def _decay(config: TrainConfig, total: int) -> Callable[[int], float]:
    """The LR multiplier after `step` optimizer steps, without warm-up."""
    schedule = config.schedule
    if schedule.name == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if schedule.name == "step":
        period = schedule.step_every_epochs * config.steps_per_epoch
        return lambda step: schedule.step_gamma ** (step // period)
    if schedule.name == "constant":
        return lambda step: 1.0
    raise ValueError(f"train: schedule.name {schedule.name!r} is unknown; known: {list(SCHEDULES)}")
