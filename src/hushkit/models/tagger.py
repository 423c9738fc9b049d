"""The tagger contract: ``forward(waveform (B, T)) -> clip logits (B, C)``, one logit per label of ``model.labels``
(multi-label: each is a sigmoid's input, trained with binary cross-entropy), for any ``T >= 1`` at
``model.sample_rate``; and ``frame_probabilities(waveform) -> (B, frames, C)``, the per-frame presence
probabilities behind them, ``frame_hop_seconds`` apart, for tagging a recording segment by segment.

Every tagger runs the log-mel front end (hushkit.models.logmel) inside itself, so it takes audio like a
denoiser does; the features are normalised per mel band by statistics ``prepare`` learns once from training audio
(buffers in the state_dict). The label names are a constructor argument, so a checkpoint names its own outputs.
A subclass implements ``outputs(features (B, frames, n_mels)) -> (clip logits, frame probabilities)`` and sets
``time_pooling`` when its frame outputs are coarser than the front end's frames.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterable, Sequence

import torch
from torch import Tensor

from hushkit.models.base import Model, capture_init
from hushkit.models.logmel import LogMel

# The synthetic corpus's procedural noise categories (hushkit.synthetic.noise.CATEGORIES, sorted) and `speech`
# (hushkit.tagging.labels.SPEECH): the labels of a tagger built without any (a checkpoint always records the ones
# it was trained on).
DEFAULT_LABELS = ("babble", "brown", "clatter", "fan", "hum", "keyboard", "music", "pink", "rain", "siren",
                  "traffic", "white", "speech")


class Tagger(Model):
    """Base of every tagger (see the module docstring)."""

    kind: ClassVar[str] = "tagger"
    time_pooling: int = 1  # front-end frames per frame output

    @capture_init
    def __init__(self, labels: Sequence[str] = DEFAULT_LABELS, sample_rate: int = 16000, n_mels: int = 64,
                 win_ms: float = 25.0, hop_ms: float = 10.0) -> None:
        super().__init__(sample_rate=sample_rate)
        names = [str(label) for label in labels]
        if not names or len(set(names)) != len(names) or not all(names):
            raise ValueError(f"a tagger needs distinct, non-empty label names, got {list(labels)}")
        self.labels = names
        self.frontend = LogMel(self.sample_rate, n_mels, win_ms, hop_ms)
        self.register_buffer("input_mean", torch.zeros(self.frontend.n_mels))
        self.register_buffer("input_std", torch.ones(self.frontend.n_mels))

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def n_mels(self) -> int:
        return self.frontend.n_mels

    @property
    def frame_hop_seconds(self) -> float:
        """Seconds between successive rows of ``frame_probabilities``."""
        return self.frontend.hop * self.time_pooling / self.sample_rate

    def features(self, waveform: Tensor) -> Tensor:
        """(B, T) → normalised log-mel features (B, frames, n_mels)."""
        if waveform.dim() == 1:
            waveform = waveform[None]
        return (self.frontend(waveform) - self.input_mean) / self.input_std

    def outputs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised features (B, frames, n_mels) → (clip logits (B, C), frame probabilities (B, frames', C))."""
        raise NotImplementedError(f"{type(self).__name__} must define outputs")

    def forward(self, waveform: Tensor) -> Tensor:
        return self.outputs(self.features(waveform))[0]

    def frame_probabilities(self, waveform: Tensor) -> Tensor:
        return self.outputs(self.features(waveform))[1]

    def set_input_stats(self, mean: Tensor, std: Tensor) -> None:
        """Per-mel-band mean and standard deviation of the log-mel features over training audio."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        for label, value in (("mean", mean), ("std", std)):
            if value.numel() != self.n_mels:
                raise ValueError(f"input {label} must have {self.n_mels} values (one per mel band), got "
                                 f"{value.numel()}")
            if not torch.isfinite(value).all():
                raise ValueError(f"input {label} has non-finite values")
        if (std <= 0).any():
            raise ValueError("input std must be positive")
        self.input_mean.copy_(mean.to(self.input_mean.device))
        self.input_std.copy_(std.to(self.input_std.device))

    @torch.no_grad()
    def prepare(self, audio: Tensor | Iterable[Tensor]) -> None:
        batches = [audio] if isinstance(audio, Tensor) else audio
        total, total_sq, count = None, None, 0
        for batch in batches:
            batch = torch.as_tensor(batch, dtype=torch.float32, device=self.input_mean.device)
            features = self.frontend(batch[None] if batch.dim() == 1 else batch).double()  # (B, frames, mels)
            s, s2 = features.sum(dim=(0, 1)), (features * features).sum(dim=(0, 1))
            total = s if total is None else total + s
            total_sq = s2 if total_sq is None else total_sq + s2
            count += features.shape[0] * features.shape[1]
        if not count:
            raise ValueError("prepare() needs at least one non-empty batch of audio")
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-5)
        self.set_input_stats(mean.float(), std.float())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, labels={self.labels}"


def attention_pooled_logits(frame_logits: Tensor, attention_logits: Tensor) -> Tensor:
    """Clip logits of attention pooling over frames: p = Σ_t w_t σ(z_t) with weights w = softmax over frames of the
    attention logits, both (B, frames, C) → logit(p), (B, C).

    Computed in log space without ever forming p: since 1 - p = Σ_t w_t σ(-z_t), logit(p) = log p - log(1 - p) is
    the difference of two log-sum-exps over frames, in which the softmax's normaliser cancels. So no clamp near 0
    or 1 cuts the gradient, as BCE-with-logits on logit(clamp(p)) would."""
    positive = torch.logsumexp(attention_logits + torch.nn.functional.logsigmoid(frame_logits), dim=1)
    negative = torch.logsumexp(attention_logits + torch.nn.functional.logsigmoid(-frame_logits), dim=1)
    return positive - negative


def check_positive(**values: Any) -> None:
    """ValueError naming the first argument that is not a positive integer."""
    for key, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in items):
            raise ValueError(f"{key} must be a positive integer (or a non-empty list of them), got {value!r}")
