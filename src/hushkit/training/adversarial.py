"""Least-squares GAN training pieces (Mao et al. 2017), as SEGAN uses them (Pascual et al. 2017).

Pure functions of a discriminator ``d(noisy, candidate) -> scores (B,)``:

* ``lsgan_discriminator_loss``: 0.5 E[(D(noisy, clean) - 1)^2] + 0.5 E[D(noisy, enhanced.detach())^2]
* ``lsgan_generator_loss``:     0.5 E[(D(noisy, enhanced) - 1)^2]

``AdversarialStep``, one discriminator update followed by the generator's adversarial term, and
``AdversarialHook``, which plugs that step into the training loop (hushkit.training.hooks): from
``adversarial.start_epoch`` on, every step adds ``adversarial.weight`` times the term to the reconstruction loss
(SEGAN: ``100 * L1(enhanced, clean)``) before the loop steps the generator.

A model trains adversarially when it has ``make_discriminator()`` (e.g. ``hushkit.models.segan.SEGAN``)::

    adversarial = AdversarialStep.for_model(model)            # None for a plain Denoiser
    ...
    enhanced = model(noisy)
    loss = reconstruction(enhanced, clean)
    loss = loss + adversarial_weight * adversarial(noisy, clean, enhanced)   # updates D first
    loss.backward(); optimizer.step()
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from hushkit.config.train import AdversarialParams
from hushkit.training.hooks import Batch, TrainingHook


def _discriminator_scores(d: Callable[[Tensor, Tensor], Tensor], noisy: Tensor, clean: Tensor,
                          enhanced: Tensor) -> tuple[Tensor, Tensor]:
    """D's scores of the real pairs (noisy, clean) and the fake pairs (noisy, enhanced.detach()), computed as one
    batch of 2B pairs (one pass instead of two: faster on CPU). D must score each example on its own, as
    ``SEGANDiscriminator`` (spectral norm, no batch statistics) does."""
    if noisy.dim() == 1:
        noisy, clean, enhanced = noisy[None], clean[None], enhanced[None]
    batch = noisy.shape[0]
    scores = d(torch.cat([noisy, noisy]), torch.cat([clean, enhanced.detach()]))
    return scores[:batch], scores[batch:]


def lsgan_discriminator_loss(d: Callable[[Tensor, Tensor], Tensor], noisy: Tensor, clean: Tensor,
                             enhanced: Tensor) -> Tensor:
    """0.5·mean((D(noisy, clean) - 1)^2) + 0.5·mean(D(noisy, enhanced.detach())^2): real pairs to 1, fakes to 0.
    No gradient reaches the generator (``enhanced`` is detached). (B, T) inputs; see ``_discriminator_scores``."""
    real, fake = _discriminator_scores(d, noisy, clean, enhanced)
    return _lsgan_d(real, fake)


def _lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()


def lsgan_generator_loss(d: Callable[[Tensor, Tensor], Tensor], noisy: Tensor, enhanced: Tensor) -> Tensor:
    """0.5·mean((D(noisy, enhanced) - 1)^2): the generator wants its output scored as real."""
    return 0.5 * (d(noisy, enhanced) - 1.0).pow(2).mean()


class AdversarialStep:
    """One LSGAN discriminator update, then the generator's adversarial term (a scalar with a graph into the
    generator only: D's parameters are frozen while it is built, so the loop's ``backward()`` neither computes
    nor accumulates D gradients, and the loop's generator optimizer and gradient clipping never see D).

    ``stats`` holds the last call's figures for logging: ``d_loss`` (before the update), ``d_grad_norm`` (before
    clipping), ``d_real`` / ``d_fake`` (mean scores of the real and enhanced pairs) and ``g_adv``.
    """

    def __init__(self, discriminator: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float | None = None,
                 scheduler: Any = None):
        self.discriminator, self.optimizer = discriminator, optimizer
        self.grad_clip, self.scheduler = grad_clip, scheduler
        self.stats: dict[str, float] = {}

    @classmethod
    def for_model(cls, model: nn.Module, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                  weight_decay: float = 0.0, grad_clip: float | None = None) -> "AdversarialStep | None":
        """The step for `model` if it trains adversarially (has ``make_discriminator``), else None. The
        discriminator is built from the model's config and put on the model's device; its optimizer is AdamW
        with the usual GAN betas (the paper used RMSprop at 2e-4)."""
        make = getattr(model, "make_discriminator", None)
        if make is None:
            return None
        discriminator = make()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        discriminator.to(device).train()
        optimizer = torch.optim.AdamW(discriminator.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        return cls(discriminator, optimizer, grad_clip=grad_clip)

    def discriminator_step(self, noisy: Tensor, clean: Tensor, enhanced: Tensor) -> float:
        """One optimizer step of D on this batch; returns the D loss before the step."""
        d = self.discriminator
        d.train()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            real, fake = _discriminator_scores(d, noisy, clean, enhanced)
            loss = _lsgan_d(real, fake)  # = lsgan_discriminator_loss
        loss.backward()
        params = [p for p in d.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip if self.grad_clip else math.inf)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.stats.update(d_loss=float(loss.detach()), d_grad_norm=float(norm),
                          d_real=float(real.detach().mean()), d_fake=float(fake.detach().mean()))
        return self.stats["d_loss"]

    def generator_term(self, noisy: Tensor, enhanced: Tensor) -> Tensor:
        """``lsgan_generator_loss`` with D frozen: gradients flow to `enhanced` (the generator) only."""
        d = self.discriminator
        flags = [p.requires_grad for p in d.parameters()]
        for p in d.parameters():
            p.requires_grad_(False)
        try:
            term = lsgan_generator_loss(d, noisy, enhanced)
        finally:
            for p, flag in zip(d.parameters(), flags):
                p.requires_grad_(flag)
        self.stats["g_adv"] = float(term.detach())
        return term

    def __call__(self, noisy: Tensor, clean: Tensor, enhanced: Tensor) -> Tensor:
        """Update D once on (noisy, clean, enhanced), then return the generator's adversarial term against the
        updated D (the paper's alternation), for the loop to add to its reconstruction loss."""
        self.discriminator_step(noisy, clean, enhanced)
        return self.generator_term(noisy, enhanced)

    def state_dict(self) -> dict[str, Any]:
        """D weights and optimizer state, e.g. ``save_checkpoint(..., adversarial=step.state_dict())``."""
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])


class AdversarialHook(TrainingHook):
    """The adversarial step in the training loop, from `start_epoch` on; each epoch's metrics gain the means of its
    figures (METRICS) over the epoch's adversarial steps."""

    key = "adversarial"
    # Its discriminator would need its own DistributedDataParallel and per-process latent draws.
    not_distributed = "train.adversarial: the discriminator's step (weight > 0)"
    METRICS = ("d_loss", "d_real", "d_fake", "g_adv")

    def __init__(self, step: AdversarialStep, settings: AdversarialParams):
        self.step, self.settings = step, settings
        self.active = False
        self.figures: dict[str, list[float]] = {key: [] for key in self.METRICS}

    @classmethod
    def for_model(cls, model: nn.Module, settings: AdversarialParams) -> "AdversarialHook | None":
        """The hook for `model` if it has a discriminator, else None."""
        step = AdversarialStep.for_model(model, lr=settings.lr)
        return None if step is None else cls(step, settings)

    def notes(self, epochs: int) -> list[str]:
        # A start after the last epoch is allowed (a short profile may cut a run's epochs below it).
        start = self.settings.start_epoch
        return [f"adversarial.start_epoch = {start} is after the last epoch ({epochs}): it never starts in this "
                "run"] if start > epochs else []

    def on_epoch_start(self, epoch: int) -> None:
        self.active = epoch >= self.settings.start_epoch
        self.figures = {key: [] for key in self.METRICS}

    def on_step(self, loss: Tensor, batch: Batch) -> Tensor:
        if not self.active:
            return loss
        # Steps the discriminator on this batch first, then scores the generator against the updated one.
        loss = loss + self.settings.weight * self.step(batch.noisy, batch.clean, batch.enhanced)
        for key, values in self.figures.items():
            values.append(self.step.stats[key])
        return loss

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, float]:
        return {key: float(np.mean(values)) for key, values in self.figures.items() if values}

    def describe(self, metrics: dict[str, float]) -> str:
        if "d_loss" not in metrics:
            return ""
        return (f"  D {metrics['d_loss']:.3f} (real {metrics['d_real']:.2f}, fake {metrics['d_fake']:.2f})"
                f"  G-adv {metrics['g_adv']:.3f}")

    def state_dict(self) -> dict[str, Any]:
        return self.step.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step.load_state_dict(state)
