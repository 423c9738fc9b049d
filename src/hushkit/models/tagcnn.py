"""TagCNN: the plain convolutional baseline tagger on log-mel features, in the shape of the Freesound Audio Tagging
2019 baseline (VGG-like conv blocks, then pooling over frequency and time, then a small classifier), kept small.

* **Conv blocks**: per block two 3x3 conv → BatchNorm → ReLU layers, then 2x2 average pooling (time and
  frequency): ``len(channels)`` blocks divide the frame rate by ``2 ** len(channels)``.
* **Pooling**: the mean over the remaining frequency bands gives one feature vector h_t per (pooled) frame; the
  clip's vector is max_t h_t + mean_t h_t.
* **Classifier**: Linear → ReLU → Dropout → Linear to one logit per class, on the clip's vector. The same
  classifier on 2 h_t (what max + mean is for a frame repeated over the whole clip) gives the frame outputs, so
  a stationary input's frame and clip outputs agree.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import capture_init, register_model
from hushkit.models.tagger import DEFAULT_LABELS, Tagger, check_positive


class ConvBlock(nn.Module):
    """(B, C_in, frames, bands) → (B, C_out, frames // 2, bands // 2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.layers(x), 2)


@register_model("tagcnn")
class TagCNN(Tagger):
    @capture_init
    def __init__(self, labels: Sequence[str] = DEFAULT_LABELS, sample_rate: int = 16000, n_mels: int = 64,
                 win_ms: float = 25.0, hop_ms: float = 10.0, channels: Sequence[int] = (16, 32, 64),
                 hidden: int = 64, dropout: float = 0.2):
        super().__init__(labels=labels, sample_rate=sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms)
        channels = list(channels)
        check_positive(channels=channels, hidden=hidden)
        if self.n_mels >> len(channels) < 1:
            raise ValueError(f"{len(channels)} blocks halve {self.n_mels} mel bands to nothing; use fewer blocks or "
                             "more bands")
        self.blocks = nn.Sequential(*[ConvBlock(a, b) for a, b in zip([1, *channels[:-1]], channels)])
        self.time_pooling = 2 ** len(channels)
        self.classifier = nn.Sequential(nn.Linear(channels[-1], hidden), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, self.n_classes))

    def outputs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        frames = features.shape[1]
        if frames < self.time_pooling:  # a clip shorter than the pooling: repeat its frames (edge padding)
            features = F.pad(features.transpose(1, 2), (0, self.time_pooling - frames), mode="replicate")
            features = features.transpose(1, 2)
        h = self.blocks(features[:, None]).mean(dim=3)  # (B, C, frames // time_pooling)
        clip = self.classifier(h.amax(dim=2) + h.mean(dim=2))
        frame_logits = self.classifier(2.0 * h.transpose(1, 2))
        return clip, torch.sigmoid(frame_logits)
