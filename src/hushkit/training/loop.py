"""The training loop: AdamW, cosine LR, gradient-norm logging, best-on-validation weights."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hushkit.training.data import PackedSplit
from hushkit.training.losses import combined_loss


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    steps_per_epoch: int
    lr: float
    weight_decay: float
    segment: int  # samples per training crop
    seed: int = 0
    grad_clip: float = 5.0
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights
    loss: dict[str, float] = field(default_factory=lambda: {"spectral": 1.0})


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Trains any waveform→waveform Denoiser; `on_epoch(metrics, epoch)` receives each epoch's figures."""

    def __init__(
        self,
        model: torch.nn.Module,
        train: PackedSplit,
        val: PackedSplit,
        config: TrainConfig,
        device: torch.device,
        on_epoch: Callable[[dict[str, float], int], None] = lambda metrics, epoch: None,
    ):
        self.model, self.train, self.val, self.config, self.device = model.to(device), train, val, config, device
        self.on_epoch = on_epoch
        self.loss_fn = combined_loss(config.loss)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        total = max(1, config.epochs * config.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        )
        self.rng = np.random.default_rng(config.seed)
        # Short CPU runs end on a noisy iterate; the weight average is a smoother, usually better model.
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
                    if config.ema_decay > 0 else None)
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val = math.inf

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(noisy), clean)
        loss.backward()
        # The norm before clipping is what tells a vanishing or exploding gradient apart from a healthy one.
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return float(loss.detach()), float(grad_norm)

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The weights that are validated and kept: the moving average when enabled."""
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def validate(self) -> float:
        model = self.evaluated_model.eval()
        losses, weights = [], []
        for noisy, clean in self.val.fixed_batches(self.config.batch_size, self.config.segment):
            losses.append(float(self.loss_fn(model(self._tensor(noisy)), self._tensor(clean))))
            weights.append(len(noisy))
        return float(np.average(losses, weights=weights))

    def fit(self) -> list[dict[str, float]]:
        cfg = self.config
        columns = (TextColumn("[bold]train[/] epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn())
        with Progress(*columns, transient=False) as progress:
            for epoch in range(1, cfg.epochs + 1):
                task = progress.add_task("epoch", total=cfg.steps_per_epoch, epoch=epoch, loss=math.nan)
                started = time.perf_counter()
                losses, norms = [], []
                for _ in range(cfg.steps_per_epoch):
                    noisy, clean = self.train.random_batch(cfg.batch_size, cfg.segment, self.rng)
                    loss, norm = self.train_step(self._tensor(noisy), self._tensor(clean))
                    losses.append(loss)
                    norms.append(norm)
                    progress.update(task, advance=1, loss=float(np.mean(losses)))
                val_loss = self.validate()
                metrics = {
                    "train_loss": float(np.mean(losses)),
                    "val_loss": val_loss,
                    "grad_norm_mean": float(np.mean(norms)),
                    "grad_norm_min": float(np.min(norms)),
                    "lr": float(self.scheduler.get_last_lr()[0]),
                    "epoch_seconds": time.perf_counter() - started,
                }
                if not math.isfinite(metrics["train_loss"]):
                    raise FloatingPointError(f"training diverged at epoch {epoch}: loss {metrics['train_loss']}")
                if val_loss < self.best_val:
                    self.best_val = val_loss
                    state = self.evaluated_model.state_dict()
                    self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in state.items()})
                self.history.append({"epoch": epoch, **metrics})
                progress.console.print(
                    f"epoch {epoch}/{cfg.epochs}: train {metrics['train_loss']:.4f}  val {val_loss:.4f}  "
                    f"grad-norm {metrics['grad_norm_mean']:.3f}  lr {metrics['lr']:.2e}  "
                    f"({metrics['epoch_seconds']:.0f} s)"
                )
                self.on_epoch(metrics, epoch)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history
