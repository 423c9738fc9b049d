"""Weight averaging as training hooks. Short CPU runs end on a noisy iterate; an average of the weights is a
smoother, usually better model, which is validated and kept instead.

* `ExponentialAverage` (`ema_decay` > 0): an exponential moving average, updated after every optimizer step.
* `StochasticWeightAverage` (`swa.start_epoch` > 0): the plain mean of the weights at the end of every epoch from
  `start_epoch` on; with `swa.lr`, SWALR anneals the LR to it over the first averaged epoch, replacing the schedule.

Both average the BatchNorm running statistics along with the weights (`use_buffers=True`), so the averaged model
needs no update_bn pass over the training data.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

from hushkit.config.train import SwaParams
from hushkit.training.hooks import TrainingHook


class ExponentialAverage(TrainingHook):
    key = "ema"

    def __init__(self, model: torch.nn.Module, decay: float):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def after_step(self, model: torch.nn.Module) -> None:
        self.averaged.update_parameters(model)

    def averaged_model(self) -> torch.nn.Module:
        return self.averaged.module

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)


class StochasticWeightAverage(TrainingHook):
    key = "swa"

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, settings: SwaParams,
                 steps_per_epoch: int):
        self.averaged = AveragedModel(model, use_buffers=True)
        self.optimizer, self.settings, self.steps_per_epoch = optimizer, settings, steps_per_epoch
        self.scheduler: SWALR | None = None  # built when averaging starts, if settings.lr is set

    def notes(self, epochs: int) -> list[str]:
        # A start after the last epoch is allowed (a short profile may cut a run's epochs below it).
        start = self.settings.start_epoch
        return [f"swa.start_epoch = {start} is after the last epoch ({epochs}): it never starts in this run"
                ] if start > epochs else []

    def on_epoch_start(self, epoch: int) -> None:
        if self.settings.lr is not None and epoch == self.settings.start_epoch:
            self.scheduler = self._make_scheduler()

    def _make_scheduler(self) -> SWALR:
        # Stepped per step like every schedule here: anneals to swa.lr over the first averaged epoch.
        return SWALR(self.optimizer, swa_lr=self.settings.lr, anneal_epochs=self.steps_per_epoch)

    @property
    def lr_scheduler(self) -> SWALR | None:
        return self.scheduler

    def on_epoch_end(self, epoch: int, model: torch.nn.Module) -> dict[str, float]:
        if epoch >= self.settings.start_epoch:
            self.averaged.update_parameters(model)
        return {}

    def averaged_model(self) -> torch.nn.Module | None:
        return self.averaged.module if int(self.averaged.n_averaged) > 0 else None

    def state_dict(self) -> dict[str, Any]:
        return {"averaged": self.averaged.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state["averaged"])
        if state["scheduler"] is not None:
            # Built before the optimizer's state is loaded, which then restores the LR exactly.
            self.scheduler = self._make_scheduler()
            self.scheduler.load_state_dict(state["scheduler"])
