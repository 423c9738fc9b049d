"""The training loop: AdamW under a selectable LR schedule, optional mixup, early stopping, gradient-norm logging,
best-on-validation weights and a resumable state saved every few epochs. Weight averaging (EMA or SWA), the
adversarial step of models with a discriminator, mixed precision and per-layer gradient norms plug in as hooks
(hushkit.training.hooks). Under torchrun, every process trains on its part of each batch
(hushkit.training.distributed).

One loop for both kinds of registered model (hushkit.models.base.KINDS): a batch is (inputs, targets) and the
model's kind picks the loss (`training_loss`): a denoiser maps noisy waveforms to enhanced ones, scored against the
clean ones by `train.loss`'s weighted terms; a tagger maps waveforms to label logits, scored against multi-hot
targets by binary cross-entropy."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hushkit.config import TrainConfig
from hushkit.training.data import TrainingSource, ValidationSource
from hushkit.training.distributed import Processes
from hushkit.training.hook_set import training_hooks
from hushkit.training.hooks import Batch, TrainingHook
from hushkit.training.losses import combined_loss
from hushkit.training.schedules import make_scheduler
from hushkit.training.state import load_training_state, save_training_state

# A mean gradient norm below this means the model has (nearly) stopped learning: vanishing gradients do not show
# in the loss curve, so the epoch's line warns.
VANISHING_GRAD_NORM = 1e-4


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_loss(model: torch.nn.Module, config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss(outputs, targets) for `model`'s kind: a tagger's binary cross-entropy on its logits (multi-label: one
    independent yes/no per class, mean over classes and examples); a denoiser's `config.loss` terms."""
    if getattr(model, "kind", "denoiser") == "tagger":
        return torch.nn.functional.binary_cross_entropy_with_logits
    return combined_loss(config.loss)


def mixup(noisy: torch.Tensor, clean: torch.Tensor, alpha: float,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example blended with a random partner by λ ~ Beta(α, α), the SAME λ for inputs and targets. A denoiser's
    mixture is additive (noisy = clean + noise), so the blend is again a valid pair (blended clean + blended noise);
    a tagger's multi-hot targets become the blend's soft targets (each label's presence weighted by λ)."""
    weight = torch.as_tensor(rng.beta(alpha, alpha, size=(len(noisy), 1)).astype(np.float32), device=noisy.device)
    partner = torch.as_tensor(rng.permutation(len(noisy)), device=noisy.device)
    return (weight * noisy + (1 - weight) * noisy[partner]), (weight * clean + (1 - weight) * clean[partner])


@dataclass
class EarlyStopping:
    """Counts epochs whose validation loss does not beat the best so far by more than `min_delta`."""

    patience: int  # 0: never stop
    min_delta: float
    best: float = math.inf
    stale_epochs: int = 0

    def should_stop(self, val_loss: float) -> bool:
        # The reference moves only on a real improvement, so a slow creep of tiny gains still counts as stale.
        if val_loss < self.best - self.min_delta:
            self.best, self.stale_epochs = val_loss, 0
        else:
            self.stale_epochs += 1
        return 0 < self.patience <= self.stale_epochs


class Trainer:
    """Trains any registered model, a denoiser or a tagger (see the module docstring); `on_epoch(metrics, epoch)`
    receives each epoch's figures.

    `train` is a TrainingSource: for a denoiser the mix stage's fixed pairs (PackedSplit) or dynamic mixing
    (DynamicMixer), for a tagger its clips (hushkit.tagging.data.TaggingSplit); it is asked for the (inputs,
    targets) batch of each global step. `val` gives the fixed validation batches (the fixed pairs; the validation
    clips). `config.segment` (samples per training crop) must be set.

    The hooks `config` turns on (hushkit.training.hook_set.training_hooks) are in `hooks`, by key.

    With a `state_path`, every `config.checkpoint_every`-th epoch saves the whole training state there, and `fit()`
    continues from a state saved under the same `fingerprint` (the caller's hash of settings and data) to the same
    final weights as an uninterrupted run. The caller deletes the file once it has what it needs.

    `processes` (hushkit.training.distributed.torchrun_processes) are the processes training together: each draws
    the same global batch of `config.batch_size` and trains on its part; rank 0 alone validates (its figure goes
    to all), reports (`on_epoch`, the progress bar) and saves the state, which every process loads on resume.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train: TrainingSource,
        val: ValidationSource,
        config: TrainConfig,
        device: torch.device,
        on_epoch: Callable[[dict[str, float], int], None] = lambda metrics, epoch: None,
        state_path: Path | None = None,
        fingerprint: str = "",
        processes: Processes = Processes(),
    ):
        if config.segment is None:
            raise ValueError("TrainConfig.segment (samples per training crop) is not set")
        processes.check_batch_size(config.batch_size)
        self.model, self.train, self.val, self.config, self.device = model.to(device), train, val, config, device
        self.processes = processes
        # What the training step runs: the model, or DDP around it (which makes every process's weights rank 0's,
        # so before anything copies them).
        self.trained_model = processes.wrap(self.model)
        self.on_epoch = on_epoch
        self.state_path = Path(state_path) if state_path is not None else None
        # The config is part of what a saved state must match: resuming under other settings is never exact.
        self.fingerprint = fingerprint + "\n" + json.dumps(asdict(config), sort_keys=True)
        self.loss_fn = training_loss(model, config)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.rng = np.random.default_rng(config.seed)
        # Built after the model is on its device and the optimizer exists (SWA's schedule steps it).
        self.hooks: dict[str, TrainingHook] = training_hooks(self.model, self.optimizer, config, device)
        if processes.distributed:
            for hook in self.hooks.values():
                if hook.not_distributed:
                    raise ValueError(f"{hook.not_distributed} does not run under torchrun yet: train this "
                                     f"architecture in one process")
        es = config.early_stopping
        self.early_stopping = EarlyStopping(es.patience, es.min_delta)
        self.stopped_epoch: int | None = None  # the epoch early stopping ended the run at
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val = math.inf

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
        """One optimizer step on a batch of inputs (`noisy`) and targets (`clean`; a tagger's multi-hot labels);
        returns the model's loss (comparable to the validation loss, with or without a hook's extra term) and the
        gradient norm before clipping."""
        hooks = self.hooks.values()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with contextlib.ExitStack() as stack:
            for hook in hooks:
                stack.enter_context(hook.forward_context())
            enhanced = self.trained_model(noisy)
        enhanced = enhanced.float()  # the losses (torch.stft among them) run in float32 (a no-op when it is)
        reconstruction = self.loss_fn(enhanced, clean)
        loss = reconstruction
        for hook in hooks:
            loss = hook.on_step(loss, Batch(noisy, clean, enhanced))
        if not any(hook.backward(loss, self.optimizer) for hook in hooks):
            loss.backward()
        for hook in hooks:
            hook.on_gradients(self.model)
        # The norm before clipping is what tells a vanishing or exploding gradient apart from a healthy one.
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if not any(hook.step_optimizer(self.optimizer) for hook in hooks):
            self.optimizer.step()
        taken_over = [hook.lr_scheduler for hook in hooks if hook.lr_scheduler is not None]
        (taken_over[-1] if taken_over else self.scheduler).step()
        for hook in hooks:
            hook.after_step(self.model)
        return float(reconstruction.detach()), float(grad_norm)

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The weights that are validated and kept: a hook's average of them once it has one, else the model's."""
        averaged = [m for m in (hook.averaged_model() for hook in self.hooks.values()) if m is not None]
        return averaged[0] if averaged else self.model

    @torch.no_grad()
    def validate(self) -> float:
        """The model's loss on the validation split (no hook's extra term: comparable across models)."""
        model = self.evaluated_model.eval()
        losses, weights = [], []
        for noisy, clean in self.val.fixed_batches(self.config.batch_size,
                                                   self.config.val_segment or self.config.segment):
            losses.append(float(self.loss_fn(model(self._tensor(noisy)), self._tensor(clean))))
            weights.append(len(noisy))
        return float(np.average(losses, weights=weights))

    def fit(self) -> list[dict[str, float]]:
        cfg = self.config
        columns = (TextColumn("[bold]train[/] epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn())
        with Progress(*columns, transient=False, disable=not self.processes.is_main) as progress:
            # One line per message whatever the terminal's width: logs stay grep-able. Rank 0 alone speaks.
            def say(text: str) -> None:
                if self.processes.is_main:
                    progress.console.print(text, soft_wrap=True)

            for hook in self.hooks.values():
                for note in hook.notes(cfg.epochs):
                    say(f"note: {note}")
            for epoch in range(self._resume(say) + 1, cfg.epochs + 1):
                if self.stopped_epoch is not None:
                    break
                metrics = self._train_epoch(epoch, progress)
                self._finish_epoch(epoch, metrics, say)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    def begin_epoch(self, epoch: int) -> None:
        """Tell the hooks that `epoch` starts (fit() does; a caller of train_step alone may)."""
        for hook in self.hooks.values():
            hook.on_epoch_start(epoch)

    def _train_epoch(self, epoch: int, progress: Progress) -> dict[str, float]:
        cfg = self.config
        self.begin_epoch(epoch)
        task = progress.add_task("epoch", total=cfg.steps_per_epoch, epoch=epoch, loss=math.nan)
        started = time.perf_counter()
        losses, norms = [], []
        for index in range(cfg.steps_per_epoch):
            loss, norm = self.train_step(*self._batch((epoch - 1) * cfg.steps_per_epoch + index))
            losses.append(loss)
            norms.append(norm)
            progress.update(task, advance=1, loss=float(np.mean(losses)))
        from_hooks: dict[str, float] = {}
        for hook in self.hooks.values():  # before validation: an average of this epoch's weights is validated
            from_hooks.update(hook.on_epoch_end(epoch, self.model))
        metrics = {
            "train_loss": self.processes.average(float(np.mean(losses))),  # every part is as large
            "val_loss": self.processes.from_main(self.validate),
            "grad_norm_mean": float(np.mean(norms)),
            "grad_norm_min": float(np.min(norms)),
            "grad_norm_max": float(np.max(norms)),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            **from_hooks,
        }
        metrics["epoch_seconds"] = time.perf_counter() - started
        return metrics

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's part of global step `step`'s batch (all of it in a single process), on the device."""
        cfg = self.config
        part = self.processes.part(cfg.batch_size)
        if cfg.mixup_alpha > 0:  # mixup pairs examples across the whole batch: every process mixes all of it
            noisy, clean = self.train.batch(step, cfg.batch_size, cfg.segment, self.rng)
            noisy, clean = mixup(noisy.to(self.device), clean.to(self.device), cfg.mixup_alpha, self.rng)
            return noisy[part], clean[part]
        noisy, clean = self.train.batch(step, cfg.batch_size, cfg.segment, self.rng, part=part)
        return noisy.to(self.device), clean.to(self.device)

    def _finish_epoch(self, epoch: int, metrics: dict[str, float], say: Callable[[str], None]) -> None:
        cfg = self.config
        if not math.isfinite(metrics["train_loss"]):
            raise FloatingPointError(f"training diverged at epoch {epoch}: loss {metrics['train_loss']}")
        val_loss = metrics["val_loss"]
        if val_loss < self.best_val:
            self.best_val = val_loss
            state = self.evaluated_model.state_dict()
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in state.items()})
        if self.early_stopping.should_stop(val_loss):
            self.stopped_epoch = epoch
        self.history.append({"epoch": epoch, **metrics})
        extra = "".join(hook.describe(metrics) for hook in self.hooks.values())
        say(f"epoch {epoch}/{cfg.epochs}: train {metrics['train_loss']:.4f}  val {val_loss:.4f}  "
            f"grad-norm {metrics['grad_norm_mean']:.3f} [{metrics['grad_norm_min']:.3f}, "
            f"{metrics['grad_norm_max']:.3f}]  lr {metrics['lr']:.2e}{extra}  "
            f"({metrics['epoch_seconds']:.0f} s)")
        mean_norm = metrics["grad_norm_mean"]
        if not math.isfinite(mean_norm) or mean_norm < VANISHING_GRAD_NORM:
            problem = "is not finite" if not math.isfinite(mean_norm) else "has vanished: the model stopped learning"
            say(f"[bold red]WARNING[/]: epoch {epoch}: mean gradient norm {mean_norm:.2e} {problem}")
        for hook in self.hooks.values():
            for warning in hook.warnings(epoch, metrics):
                say(f"[bold red]WARNING[/]: epoch {epoch}: {warning}")
        if self.stopped_epoch is not None:
            say(f"early stopping after epoch {epoch}: validation loss has not improved by more than "
                f"{cfg.early_stopping.min_delta} for {self.early_stopping.stale_epochs} epochs "
                f"(best {self.best_val:.4f})")
        if not self.processes.is_main:
            return
        # Report first, then save: every saved epoch has been reported, and a kill in between repeats the epoch.
        self.on_epoch(metrics, epoch)
        if self.state_path is not None and cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0:
            save_training_state(self.state_path, self.fingerprint, self._state(epoch))

    def _state(self, epoch: int) -> dict[str, Any]:
        """Everything a restarted run needs to continue bit-exactly after `epoch`."""
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "hooks": {key: hook.state_dict() for key, hook in self.hooks.items()},
            # Batches, crops and mixup draw from the numpy generator; dropout and SEGAN's latent from torch's.
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            # The training device's alone: under torchrun every process's GPU draws what rank 0's drew.
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "history": self.history,
            "best_val": self.best_val,
            "best_state": self.best_state,
            "early_stopping": asdict(self.early_stopping),
            "stopped_epoch": self.stopped_epoch,
        }

    def _resume(self, say: Callable[[str], None]) -> int:
        """Load the saved state if it belongs to this run; returns the last finished epoch (0: a fresh start)."""
        state = load_training_state(self.state_path, self.fingerprint, log=say)
        self.processes.check_same(0 if state is None else state["epoch"], "the epoch to resume from",
                                  f"every process must read the same {self.state_path} (on several hosts, from a "
                                  "filesystem they share)")
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        for key, hook in self.hooks.items():  # before the optimizer's state, which then restores the LR exactly
            hook.load_state_dict(state["hooks"][key])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.history, self.best_val, self.best_state = state["history"], state["best_val"], state["best_state"]
        self.early_stopping = EarlyStopping(**state["early_stopping"])
        self.stopped_epoch = state["stopped_epoch"]
        say(f"resuming from epoch {state['epoch']} of {self.config.epochs} (saved state {self.state_path})")
        return state["epoch"]
