"""DenseNet mask estimator on the spectrogram (Huang et al. 2017, "Densely Connected Convolutional Networks",
CVPR), applied to speech enhancement on the (frequency, time) plane.

As in DenseNet-BC:

* **dense blocks**: layer ``i`` of a block sees the concatenation of the block input and the outputs of layers
  ``0 .. i-1`` (``in + i * growth`` channels) and adds ``growth`` channels; a layer is BN → ReLU → 1x1 bottleneck
  conv (``4 * growth`` channels, when ``bottleneck``) → BN → ReLU → 3x3 conv (``growth`` channels);
* **transition layers** between blocks: BN → ReLU → 1x1 conv compressing to ``floor(compression * channels)``
  channels (θ = 0.5), then, when ``freq_pool``, 2x average pooling in frequency. Never any pooling in time: one
  mask frame per input frame;
* a stem conv (``2 * growth`` channels) before the first block.

Ours, for speech enhancement on a CPU budget:

* every conv is **causal in time**: a 3-frame time kernel sees the current frame and the two before it (left
  padding only), so the mask has no look-ahead beyond the STFT window, and the model could stream frame by frame
  (the state to carry: the last 2 input frames of each 3x3 conv);
* the stem **folds** frequency (space-to-depth): the 257 bins become ``fold`` (4) channels of ``ceil(257 / 4)``
  (65) bins, channel ``j`` holding bins ``j, fold + j, ...``; lossless, but the dense blocks then run at a quarter
  of the resolution. Full-resolution feature maps are what makes a 2-D CNN slow on a CPU (measured: the same
  blocks at 129 bins cost ~4x more);
* with ``freq_pool`` the transitions pool 65 → 33 → 17 bins, and a **matching upsampling path** mirrors each
  pooling: nearest 2x upsampling in frequency (cropped to the size on the way down), concatenated with that
  level's transition output, then BN → ReLU → 1x1 conv (compression θ again);
* the **head** makes the mask in the folded domain: BN → ReLU, concatenated with the folded input features
  (so every bin sees its own fine-resolution input again), one conv (3 folded bins x 1 frame) to ``fold``
  channels, unfolded (sub-pixel, Shi et al. 2016) into a sigmoid mask of the full 257 bins.

``fold=1, freq_pool=False`` is the plain full-resolution DenseNet (several times slower on CPU).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import SpectralMaskDenoiser, capture_init, register_model


class _CausalConv(nn.Module):
    """Conv2d over (freq, time) with 'same' frequency padding and causal time padding: output frame k sees input
    frames k - time_kernel + 1 .. k. Implemented as the conv padded by time_kernel - 1 frames on both sides with the
    last time_kernel - 1 output frames dropped (the same sums; cheaper on CPU than copying a left-padded input)."""

    def __init__(self, in_channels: int, out_channels: int, freq_kernel: int, time_kernel: int, bias: bool = False):
        super().__init__()
        self.trim = time_kernel - 1
        self.conv = nn.Conv2d(in_channels, out_channels, (freq_kernel, time_kernel),
                              padding=(freq_kernel // 2, self.trim), bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y[..., : -self.trim] if self.trim else y


class _DenseLayer(nn.Module):
    """BN → ReLU → [1x1 conv to 4·growth → BN → ReLU] → 3x3 causal conv to `growth` channels."""

    def __init__(self, in_channels: int, growth: int, bottleneck: bool):
        super().__init__()
        self.in_channels = in_channels
        parts: list[nn.Module] = [nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True)]
        width = in_channels
        if bottleneck:
            width = 4 * growth
            parts += [nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        parts.append(_CausalConv(width, growth, 3, 3))
        self.body = nn.Sequential(*parts)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class _DenseBlock(nn.Module):
    def __init__(self, in_channels: int, layers: int, growth: int, bottleneck: bool):
        super().__init__()
        self.layers = nn.ModuleList(_DenseLayer(in_channels + i * growth, growth, bottleneck) for i in range(layers))
        self.out_channels = in_channels + layers * growth

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1) if len(features) > 1 else x))
        return torch.cat(features, dim=1)


def _bn_relu_conv1x1(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False))


def _pool_freq(x: Tensor) -> Tensor:
    """2x average pooling in frequency; an odd size is first padded by repeating the last bin (static shapes, so
    the ONNX graph is plain Concat + AveragePool, no ceil-mode divisor subtleties)."""
    if x.shape[2] % 2:
        x = torch.cat([x, x[:, :, -1:]], dim=2)
    return F.avg_pool2d(x, (2, 1))


def _upsample_freq(x: Tensor, bins: int) -> Tensor:
    """Nearest 2x upsampling in frequency, cropped to `bins` (undoes `_pool_freq`'s shape)."""
    return F.interpolate(x, scale_factor=(2.0, 1.0), mode="nearest")[:, :, :bins]


@register_model("densenet")
class DenseNet(SpectralMaskDenoiser):
    """DenseNet-BC mask estimator, causal in time (see the module docstring).

    Defaults: growth 8, blocks of (2, 3, 4) layers at 65, 33 and 17 folded bins, bottlenecks, θ = 0.5: 36 k
    parameters; a training step (batch 16 x 2 s, forward + backward + AdamW) costs ~0.58 CPU-seconds on one
    core, about 0.9x a default crced step. The deeper blocks sit where the resolution is coarse and layers are
    cheap. Growth 12 costs ~1.8x as much; ``fold=2`` ~2.5x.
    """

    @capture_init
    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 256,
        growth: int = 8,
        layers_per_block: Sequence[int] = (2, 3, 4),
        bottleneck: bool = True,
        compression: float = 0.5,
        freq_pool: bool = True,
        fold: int = 4,
        stem_channels: int = 0,
        window: str = "sqrt_hann",
    ):
        super().__init__(sample_rate=sample_rate, n_fft=n_fft, hop=hop, window=window)
        blocks = [int(n) for n in layers_per_block]
        if not blocks or any(n < 1 for n in blocks):
            raise ValueError(f"layers_per_block must be a non-empty list of positive counts, got {blocks}")
        if growth < 1 or not 0.0 < compression <= 1.0 or fold < 1 or stem_channels < 0:
            raise ValueError("need growth >= 1, 0 < compression <= 1, fold >= 1, stem_channels >= 0; got "
                             f"{growth}, {compression}, {fold}, {stem_channels}")
        self.growth, self.freq_pool, self.fold = int(growth), bool(freq_pool), int(fold)
        channels = int(stem_channels) or 2 * self.growth
        # Frequency sizes: after folding (the first block's), then after each pooling.
        bins = [-(-self.n_bins // self.fold)]
        self.stem = _CausalConv(self.fold, channels, 3, 3)
        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()
        skip_channels = []
        for i, layers in enumerate(blocks):
            block = _DenseBlock(channels, layers, self.growth, bool(bottleneck))
            self.blocks.append(block)
            channels = block.out_channels
            if i < len(blocks) - 1:
                compressed = max(1, int(compression * channels))
                self.transitions.append(_bn_relu_conv1x1(channels, compressed))
                channels = compressed
                if self.freq_pool:
                    skip_channels.append(channels)
                    bins.append((bins[-1] + 1) // 2)
        self.level_bins = bins
        # Upsampling path: one step per pooling, deepest first, each joined by that level's transition output.
        self.ups = nn.ModuleList()
        for skip in reversed(skip_channels):
            out = max(self.growth, int(compression * (channels + skip)))
            self.ups.append(_bn_relu_conv1x1(channels + skip, out))
            channels = out
        # The mask, made in the folded domain (cheap: no full-resolution activations): BN → ReLU, joined by the
        # folded input features, one conv (3 folded bins x 1 frame) to `fold` channels, one per bin of a group;
        # unfolding them (sub-pixel, as in Shi et al. 2016) gives the full-resolution mask.
        self.head_norm = nn.BatchNorm2d(channels)
        self.head = nn.Conv2d(channels + self.fold, self.fold, (3, 1), padding=(1, 0))

    def _fold(self, x: Tensor) -> Tensor:
        """(B, 1, F, frames) → (B, fold, ceil(F / fold), frames): channel j holds bins j, fold + j, ..."""
        if self.fold == 1:
            return x
        pad = self.level_bins[0] * self.fold - self.n_bins
        x = F.pad(x, (0, 0, 0, pad))[:, 0]
        return x.unflatten(1, (self.level_bins[0], self.fold)).transpose(1, 2)

    def _unfold(self, x: Tensor) -> Tensor:
        """(B, fold, F', frames) → (B, F, frames): the inverse of `_fold` (for one channel), cropped to F bins."""
        return x.transpose(1, 2).flatten(1, 2)[:, : self.n_bins]

    def estimate_mask(self, features: Tensor) -> Tensor:
        # (B, 1, F, frames) → (B, fold, F', frames); channels-last runs these small-channel convs ~2x faster on CPU
        # (a no-op in ONNX).
        folded = self._fold(features[:, None]).contiguous(memory_format=torch.channels_last)
        x = self.stem(folded)
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.transitions):
                x = self.transitions[i](x)
                if self.freq_pool:
                    skips.append(x)
                    x = _pool_freq(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(torch.cat([_upsample_freq(x, skip.shape[2]), skip], dim=1))
        x = self.head(torch.cat([F.relu(self.head_norm(x)), folded], dim=1))
        return torch.sigmoid(self._unfold(x))
