"""The training loop: AdamW under a selectable LR schedule, optional mixup, weight averaging (EMA or SWA),
adversarial training for models with a discriminator, early stopping, gradient-norm logging, best-on-validation
weights, a resumable state saved every few epochs, and mixed precision on GPU."""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

from hushkit.training.adversarial import AdversarialStep
from hushkit.training.data import PackedSplit, TrainingSource
from hushkit.training.losses import combined_loss
from hushkit.training.schedules import check_schedule, make_scheduler
from hushkit.training.state import load_training_state, save_training_state

# A mean gradient norm below this means the model has (nearly) stopped learning: a seed project lost a model to
# vanishing gradients that nobody saw in the loss curve.
VANISHING_GRAD_NORM = 1e-4
ADVERSARIAL_METRICS = ("d_loss", "d_real", "d_fake", "g_adv")


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    steps_per_epoch: int
    lr: float
    weight_decay: float
    segment: int  # samples per training crop
    seed: int = 0
    # Samples from the start of each validation utterance that validation scores (0: `segment`). Kept at the
    # features stage's crop when an architecture trains on shorter ones: the first half second of an utterance
    # is mostly onset and silence, too little to tell one epoch's weights from another's.
    val_segment: int = 0
    grad_clip: float = 5.0
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights
    loss: dict[str, float] = field(default_factory=lambda: {"spectral": 1.0})
    schedule: str = "cosine"  # constant | cosine | step | onecycle (see hushkit.training.schedules)
    warmup_steps: int = 0  # linear LR warm-up over the first steps (not with onecycle)
    step_every_epochs: int = 3  # step schedule: multiply the LR by step_gamma every this many epochs
    step_gamma: float = 0.5
    onecycle_pct_start: float = 0.3  # onecycle: the share of the run spent rising to the peak LR
    early_stopping_patience: int = 0  # > 0: stop after this many epochs without a validation improvement
    early_stopping_min_delta: float = 0.0  # an improvement must beat the best validation loss by more than this
    mixup_alpha: float = 0.0  # > 0: mix training examples pairwise, λ ~ Beta(α, α)
    swa_start_epoch: int = 0  # > 0: stochastic weight averaging of the weights at the end of this epoch on
    swa_lr: float | None = None  # set: SWALR anneals to this LR when averaging starts, replacing the schedule
    checkpoint_every: int = 1  # epochs between resumable states (0: never; needs the Trainer's state_path)
    adversarial_weight: float = 1.0  # models with a discriminator: weight of the generator's adversarial term
    adversarial_lr: float = 2e-4  # the discriminator's learning rate
    adversarial_start_epoch: int = 1  # later: pre-train the generator on the reconstruction loss alone first

    def __post_init__(self) -> None:
        # Errors name the params.yaml key (see from_params), which is what a user edits.
        _require(self.epochs >= 1, "epochs", "must be >= 1", self.epochs)
        _require(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        _require(self.steps_per_epoch >= 1, "steps_per_epoch", "must be >= 1", self.steps_per_epoch)
        _require(self.lr > 0, "lr", "must be > 0", self.lr)
        _require(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _require(self.segment >= 1, "segment", "must be >= 1", self.segment)
        _require(self.val_segment >= 0, "val_segment", "must be >= 0 (0: segment)", self.val_segment)
        _require(self.grad_clip > 0, "grad_clip", "must be > 0", self.grad_clip)
        _require(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)", self.ema_decay)
        check_schedule(self.schedule, self.warmup_steps)
        _require(self.warmup_steps >= 0, "schedule.warmup_steps", "must be >= 0", self.warmup_steps)
        _require(self.step_every_epochs >= 1, "schedule.step_every_epochs", "must be >= 1", self.step_every_epochs)
        _require(0 < self.step_gamma <= 1, "schedule.step_gamma", "must be in (0, 1]", self.step_gamma)
        _require(0 < self.onecycle_pct_start < 1, "schedule.onecycle_pct_start", "must be in (0, 1)",
                 self.onecycle_pct_start)
        _require(self.early_stopping_patience >= 0, "early_stopping.patience", "must be >= 0 (0: off)",
                 self.early_stopping_patience)
        _require(self.early_stopping_min_delta >= 0, "early_stopping.min_delta", "must be >= 0",
                 self.early_stopping_min_delta)
        _require(self.mixup_alpha >= 0, "mixup_alpha", "must be >= 0 (0: off)", self.mixup_alpha)
        _require(self.swa_start_epoch >= 0, "swa.start_epoch", "must be >= 0 (0: off)", self.swa_start_epoch)
        _require(self.swa_lr is None or self.swa_lr > 0, "swa.lr", "must be > 0 (or null: keep the schedule)",
                 self.swa_lr)
        if self.swa_start_epoch and self.ema_decay:
            raise ValueError(f"train: swa.start_epoch = {self.swa_start_epoch} and ema_decay = {self.ema_decay} "
                             "both average the weights; set ema_decay to 0 to use SWA")
        _require(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: never)", self.checkpoint_every)
        _require(self.adversarial_weight >= 0, "adversarial.weight", "must be >= 0 (0: off)",
                 self.adversarial_weight)
        _require(self.adversarial_lr > 0, "adversarial.lr", "must be > 0", self.adversarial_lr)
        _require(self.adversarial_start_epoch >= 1, "adversarial.start_epoch", "must be >= 1",
                 self.adversarial_start_epoch)

    @classmethod
    def from_params(cls, section: dict[str, Any], segment: int, val_segment: int = 0) -> "TrainConfig":
        """The config for one architecture's training settings from params.yaml (train.common merged with
        train.models.<arch>); `segment` comes from the features stage."""
        section = dict(section)
        _reject_unknown("train", section, {key.split(".")[0] for key in _PARAM_FIELDS} | _NOT_LOOP_KEYS)
        missing = [key for key in _REQUIRED_PARAMS if key not in section]
        if missing:
            raise ValueError(f"train: missing key(s) {missing}")
        for name, keys in _PARAM_SECTIONS.items():
            value = section.get(name)
            if value is None:
                section[name] = {}
            elif not isinstance(value, dict):
                raise ValueError(f"train: {name} must be a mapping with keys {sorted(keys)}, got {value!r}")
            else:
                _reject_unknown(f"train.{name}", value, keys)
        values = {}
        for key, (name, kind) in _PARAM_FIELDS.items():
            outer, _, inner = key.rpartition(".")
            holder = section[outer] if outer else section
            if inner in holder:
                values[name] = _typed(key, holder[inner], kind)
        # weight_decay is optional here but has no field default (fields after it have none).
        return cls(segment=segment, val_segment=val_segment, **{"weight_decay": 0.0, **values})


# params.yaml key (dotted inside a section) → TrainConfig field and the type its value must have.
_PARAM_FIELDS: dict[str, tuple[str, str]] = {
    "seed": ("seed", "int"),
    "epochs": ("epochs", "int"),
    "steps_per_epoch": ("steps_per_epoch", "int"),
    "batch_size": ("batch_size", "int"),
    "lr": ("lr", "float"),
    "weight_decay": ("weight_decay", "float"),
    "grad_clip": ("grad_clip", "float"),
    "loss": ("loss", "mapping"),
    "ema_decay": ("ema_decay", "float"),
    "schedule.name": ("schedule", "str"),
    "schedule.warmup_steps": ("warmup_steps", "int"),
    "schedule.step_every_epochs": ("step_every_epochs", "int"),
    "schedule.step_gamma": ("step_gamma", "float"),
    "schedule.onecycle_pct_start": ("onecycle_pct_start", "float"),
    "early_stopping.patience": ("early_stopping_patience", "int"),
    "early_stopping.min_delta": ("early_stopping_min_delta", "float"),
    "mixup_alpha": ("mixup_alpha", "float"),
    "swa.start_epoch": ("swa_start_epoch", "int"),
    "swa.lr": ("swa_lr", "float or null"),
    "checkpoint_every": ("checkpoint_every", "int"),
    "adversarial.weight": ("adversarial_weight", "float"),
    "adversarial.lr": ("adversarial_lr", "float"),
    "adversarial.start_epoch": ("adversarial_start_epoch", "int"),
}
_PARAM_SECTIONS = {name: {key.partition(".")[2] for key in _PARAM_FIELDS if key.startswith(name + ".")}
                   for name in ("schedule", "early_stopping", "swa", "adversarial")}
_REQUIRED_PARAMS = ("epochs", "batch_size", "steps_per_epoch", "lr")
# Training settings that are not the loop's: the train stage reads them itself.
_NOT_LOOP_KEYS = {"model", "model_args", "device", "mixed_precision", "audio_examples", "segment_seconds", "mixing",
                  "dynamic_mixing", "threads", "cpu_isa"}


def _require(ok: bool, key: str, requirement: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"train: {key} {requirement}, got {value!r}")


def _reject_unknown(where: str, section: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def _typed(key: str, value: Any, kind: str) -> Any:
    """`value` checked against `kind`; an int is a float too, a YAML boolean is neither."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {"int": number and isinstance(value, int), "float": number, "float or null": number or value is None,
            "str": isinstance(value, str), "mapping": isinstance(value, dict)}[kind]
    if not fits:
        # PyYAML reads exponents without a dot (1e-3) as strings.
        hint = "; YAML reads 1e-3 as a string, write 1.0e-3" if "float" in kind and isinstance(value, str) else ""
        raise ValueError(f"train: {key} must be {'an' if kind == 'int' else 'a'} {kind}, got {value!r}{hint}")
    return float(value) if kind.startswith("float") and value is not None else value


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def autocast_dtype(setting: str | bool | None, device: torch.device) -> torch.dtype | None:
    """The lower precision the model's forward pass runs in under autocast, or None for plain float32.

    `train.common.mixed_precision` (default `auto`): `auto` (or YAML true) is bfloat16 on a CUDA device that has it,
    float16 (with loss scaling) on an older CUDA one, and float32 anywhere else, so the same params train on CPU
    exactly as before; `bf16` / `fp16` force that precision (also on CPU, where they are slow: for tests);
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


def mixup(noisy: torch.Tensor, clean: torch.Tensor, alpha: float,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example blended with a random partner by λ ~ Beta(α, α), the SAME λ for noisy and clean: a mixture is
    additive (noisy = clean + noise), so the blend is again a valid pair (blended clean + blended noise)."""
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
    """Trains any waveform→waveform Denoiser; `on_epoch(metrics, epoch)` receives each epoch's figures.

    `train` is a TrainingSource: the mix stage's fixed pairs (PackedSplit) or dynamic mixing (DynamicMixer); it is
    asked for the batch of each global step. `val` is always the fixed validation pairs.

    With a `state_path`, every `config.checkpoint_every`-th epoch saves the whole training state there, and `fit()`
    continues from a state saved under the same `fingerprint` (the caller's hash of settings and data) to the same
    final weights as an uninterrupted run. The caller deletes the file once it has what it needs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train: TrainingSource,
        val: PackedSplit,
        config: TrainConfig,
        device: torch.device,
        on_epoch: Callable[[dict[str, float], int], None] = lambda metrics, epoch: None,
        state_path: Path | None = None,
        fingerprint: str = "",
        mixed_precision: str | bool | None = "auto",
    ):
        self.model, self.train, self.val, self.config, self.device = model.to(device), train, val, config, device
        # Mixed precision (GPU by default): the model's forward pass runs under autocast; losses, the discriminator,
        # validation and the weights (and so the optimizer, EMA/SWA and checkpoints) stay float32. float16 needs
        # loss scaling against underflowing gradients; bfloat16 has float32's range and does not.
        self.autocast_dtype = autocast_dtype(mixed_precision, device)
        self.scaler = torch.amp.GradScaler(device.type) if self.autocast_dtype == torch.float16 else None
        self.on_epoch = on_epoch
        self.state_path = Path(state_path) if state_path is not None else None
        # The config is part of what a saved state must match: resuming under other settings is never exact.
        self.fingerprint = fingerprint + "\n" + json.dumps(asdict(config), sort_keys=True)
        self.loss_fn = combined_loss(config.loss)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.swa_scheduler: SWALR | None = None  # built when SWA starts, if config.swa_lr is set
        self.rng = np.random.default_rng(config.seed)
        # Short CPU runs end on a noisy iterate; the weight average is a smoother, usually better model.
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
                    if config.ema_decay > 0 else None)
        # use_buffers=True averages the BatchNorm running statistics along with the weights, so the SWA model
        # needs no update_bn pass over the training data.
        self.swa = AveragedModel(self.model, use_buffers=True) if config.swa_start_epoch else None
        # Built after the model is on its device: the discriminator goes to the same one.
        self.adversarial = (AdversarialStep.for_model(self.model, lr=config.adversarial_lr)
                            if config.adversarial_weight > 0 else None)
        self.epoch = 1  # the epoch in progress (train_step asks it whether the adversarial term is on yet)
        self.early_stopping = EarlyStopping(config.early_stopping_patience, config.early_stopping_min_delta)
        self.stopped_epoch: int | None = None  # the epoch early stopping ended the run at
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val = math.inf

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    @property
    def adversarial_active(self) -> bool:
        return self.adversarial is not None and self.epoch >= self.config.adversarial_start_epoch

    def train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
        """One optimizer step; returns the reconstruction loss (comparable to the validation loss, with or without
        an adversarial term) and the gradient norm before clipping."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.autocast_dtype is None:
            enhanced = self.model(noisy)
        else:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                enhanced = self.model(noisy)
            enhanced = enhanced.float()  # the losses (torch.stft among them) run in float32
        reconstruction = self.loss_fn(enhanced, clean)
        loss = reconstruction
        if self.adversarial_active:
            # Steps the discriminator on this batch first, then scores the generator against the updated one.
            loss = loss + self.config.adversarial_weight * self.adversarial(noisy, clean, enhanced)
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)  # clip and log the true gradient norm
        # The norm before clipping is what tells a vanishing or exploding gradient apart from a healthy one.
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)  # skipped (and the scale lowered) when a gradient overflowed
            self.scaler.update()
        (self.swa_scheduler if self.swa_scheduler is not None else self.scheduler).step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return float(reconstruction.detach()), float(grad_norm)

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The weights that are validated and kept: the moving average when enabled, the SWA average once it has
        started."""
        if self.ema is not None:
            return self.ema.module
        if self.swa is not None and int(self.swa.n_averaged) > 0:
            return self.swa.module
        return self.model

    @torch.no_grad()
    def validate(self) -> float:
        """The reconstruction loss on the validation split (no adversarial term: comparable across models)."""
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
        with Progress(*columns, transient=False) as progress:
            # One line per message whatever the terminal's width: logs stay grep-able.
            def say(text: str) -> None:
                progress.console.print(text, soft_wrap=True)

            self._note_late_starts(say)
            for epoch in range(self._resume(say) + 1, cfg.epochs + 1):
                if self.stopped_epoch is not None:
                    break
                metrics = self._train_epoch(epoch, progress)
                self._finish_epoch(epoch, metrics, say)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    def _note_late_starts(self, say: Callable[[str], None]) -> None:
        """A start epoch after the last is allowed (a short profile may cut a run's epochs below it), but the feature
        then never runs: worth a line."""
        cfg = self.config
        starts = {"swa.start_epoch": cfg.swa_start_epoch if self.swa is not None else 0,
                  "adversarial.start_epoch": cfg.adversarial_start_epoch if self.adversarial is not None else 0}
        for name, start in starts.items():
            if start > cfg.epochs:
                say(f"note: {name} = {start} is after the last epoch ({cfg.epochs}): it never starts in this run")

    def _train_epoch(self, epoch: int, progress: Progress) -> dict[str, float]:
        cfg = self.config
        self.epoch = epoch
        if self.swa is not None and cfg.swa_lr is not None and epoch == cfg.swa_start_epoch:
            self.swa_scheduler = self._make_swa_scheduler()
        task = progress.add_task("epoch", total=cfg.steps_per_epoch, epoch=epoch, loss=math.nan)
        started = time.perf_counter()
        losses, norms = [], []
        adversarial: dict[str, list[float]] = {key: [] for key in ADVERSARIAL_METRICS}
        for index in range(cfg.steps_per_epoch):
            step = (epoch - 1) * cfg.steps_per_epoch + index
            noisy, clean = self.train.batch(step, cfg.batch_size, cfg.segment, self.rng)
            noisy, clean = noisy.to(self.device), clean.to(self.device)
            if cfg.mixup_alpha > 0:
                noisy, clean = mixup(noisy, clean, cfg.mixup_alpha, self.rng)
            loss, norm = self.train_step(noisy, clean)
            losses.append(loss)
            norms.append(norm)
            if self.adversarial_active:
                for key, values in adversarial.items():
                    values.append(self.adversarial.stats[key])
            progress.update(task, advance=1, loss=float(np.mean(losses)))
        if self.swa is not None and epoch >= cfg.swa_start_epoch:
            self.swa.update_parameters(self.model)
        metrics = {
            "train_loss": float(np.mean(losses)),
            "val_loss": self.validate(),
            "grad_norm_mean": float(np.mean(norms)),
            "grad_norm_min": float(np.min(norms)),
            "grad_norm_max": float(np.max(norms)),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            **{key: float(np.mean(values)) for key, values in adversarial.items() if values},
        }
        metrics["epoch_seconds"] = time.perf_counter() - started
        return metrics

    def _make_swa_scheduler(self) -> SWALR:
        # Stepped per step like every schedule here: anneals to swa_lr over the first averaged epoch.
        return SWALR(self.optimizer, swa_lr=self.config.swa_lr, anneal_epochs=self.config.steps_per_epoch)

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
        adversarial = (f"  D {metrics['d_loss']:.3f} (real {metrics['d_real']:.2f}, fake {metrics['d_fake']:.2f})"
                       f"  G-adv {metrics['g_adv']:.3f}" if "d_loss" in metrics else "")
        say(f"epoch {epoch}/{cfg.epochs}: train {metrics['train_loss']:.4f}  val {val_loss:.4f}  "
            f"grad-norm {metrics['grad_norm_mean']:.3f} [{metrics['grad_norm_min']:.3f}, "
            f"{metrics['grad_norm_max']:.3f}]  lr {metrics['lr']:.2e}{adversarial}  "
            f"({metrics['epoch_seconds']:.0f} s)")
        mean_norm = metrics["grad_norm_mean"]
        if not math.isfinite(mean_norm) or mean_norm < VANISHING_GRAD_NORM:
            problem = "is not finite" if not math.isfinite(mean_norm) else "has vanished: the model stopped learning"
            say(f"[bold red]WARNING[/]: epoch {epoch}: mean gradient norm {mean_norm:.2e} {problem}")
        if self.stopped_epoch is not None:
            say(f"early stopping after epoch {epoch}: validation loss has not improved by more than "
                f"{cfg.early_stopping_min_delta} for {self.early_stopping.stale_epochs} epochs "
                f"(best {self.best_val:.4f})")
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
            "swa_scheduler": self.swa_scheduler.state_dict() if self.swa_scheduler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "swa": self.swa.state_dict() if self.swa is not None else None,
            "adversarial": self.adversarial.state_dict() if self.adversarial is not None else None,
            **({"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
            # Batches, crops and mixup draw from the numpy generator; dropout and SEGAN's latent from torch's.
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "history": self.history,
            "best_val": self.best_val,
            "best_state": self.best_state,
            "early_stopping": asdict(self.early_stopping),
            "stopped_epoch": self.stopped_epoch,
        }

    def _resume(self, say: Callable[[str], None]) -> int:
        """Load the saved state if it belongs to this run; returns the last finished epoch (0: a fresh start)."""
        state = load_training_state(self.state_path, self.fingerprint, log=say)
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        if state["swa_scheduler"] is not None:
            # Built before the optimizer's state is loaded, which then restores the LR exactly.
            self.swa_scheduler = self._make_swa_scheduler()
            self.swa_scheduler.load_state_dict(state["swa_scheduler"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for averaged, key in ((self.ema, "ema"), (self.swa, "swa")):
            if averaged is not None:
                averaged.load_state_dict(state[key])
        if self.adversarial is not None:
            self.adversarial.load_state_dict(state["adversarial"])
        if self.scaler is not None and state.get("grad_scaler") is not None:
            self.scaler.load_state_dict(state["grad_scaler"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history, self.best_val, self.best_state = state["history"], state["best_val"], state["best_state"]
        self.early_stopping = EarlyStopping(**state["early_stopping"])
        self.stopped_epoch = state["stopped_epoch"]
        say(f"resuming from epoch {state['epoch']} of {self.config.epochs} (saved state {self.state_path})")
        return state["epoch"]
