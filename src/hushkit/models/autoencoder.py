"""Waveform denoising autoencoder: a 1-D convolutional U-Net on the raw waveform (Demucs-style, without the LSTM).

Défossez et al., "Real Time Speech Enhancement in the Waveform Domain" (Demucs denoiser, arXiv 2006.12847), and
Stoller et al., Wave-U-Net (arXiv 1806.03185). As in Demucs:

* the input is normalised by its standard deviation, ``x / (std + floor)``, and the output multiplied back, so
  a speech level of -35 dBFS behaves like -10 dBFS (the model is scale-equivariant up to ``floor``); an
  all-zero input gives ``floor`` times the network's response to silence (~1e-6) and finite gradients;
* ``depth`` encoder levels, each ``Conv1d(kernel, stride)`` → ReLU → ``Conv1d(1x1, 2c)`` → GLU, with
  ``channels * growth**level`` channels: every level divides the time resolution by ``stride``;
* the decoder mirrors it: ``Conv1d(1x1, 2c)`` → GLU → ``ConvTranspose1d(kernel, stride)`` → ReLU (none on the
  last level, which outputs the waveform directly), and the encoder output of the same level is *added*
  (U-Net skip) to the decoder input at every level;
* weights are rescaled at initialisation (Demucs' ``rescale=0.1``), which speeds up early training.

Our variant: the bottleneck is one residual ``Conv1d(kernel 3)`` → GLU block instead of a BiLSTM (cheap, ONNX-
friendly, widens the context by one bottleneck frame each side); no up-sampling of the input; every strided
conv is padded by ``kernel - stride`` (left ``(kernel - stride) // 2``) so a level maps ``n * stride`` samples
to exactly ``n`` frames and back. The input is zero-padded on the right to a multiple of ``stride ** depth`` and
the output cropped back, so any length ``T >= 1`` works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import Denoiser, register_model

# Added to the input's standard deviation before dividing by it (Demucs: 1e-3). 1e-5 keeps the scale error at
# -35 dBFS (RMS ~0.018) below 0.1 %, and all-zero input at exactly zero.
STD_FLOOR = 1e-5
RESCALE_REFERENCE = 0.1


def _rescale_(module: nn.Module, reference: float = RESCALE_REFERENCE) -> None:
    """Demucs' weight rescaling: divide each conv's weight (and bias) by sqrt(std(weight) / reference)."""
    for sub in module.modules():
        if isinstance(sub, (nn.Conv1d, nn.ConvTranspose1d)):
            std = sub.weight.detach().std()
            if torch.isfinite(std) and std > 0:
                scale = (std / reference) ** 0.5
                sub.weight.data /= scale
                if sub.bias is not None:
                    sub.bias.data /= scale


class _Down(nn.Module):
    """One encoder level: n*stride samples → n frames."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        self.pad = ((kernel - stride) // 2, kernel - stride - (kernel - stride) // 2)
        symmetric = self.pad[0] == self.pad[1]
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride, padding=self.pad[0] if symmetric else 0)
        self.external_pad = not symmetric
        self.gate = nn.Conv1d(out_channels, 2 * out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.external_pad:
            x = F.pad(x, self.pad)
        return F.glu(self.gate(F.relu(self.conv(x))), dim=1)


class _Up(nn.Module):
    """One decoder level: n frames → n*stride samples."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, last: bool):
        super().__init__()
        self.crop = ((kernel - stride) // 2, kernel - stride - (kernel - stride) // 2)
        symmetric = self.crop[0] == self.crop[1]
        self.gate = nn.Conv1d(in_channels, 2 * in_channels, 1)
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel, stride,
                                       padding=self.crop[0] if symmetric else 0)
        self.external_crop = not symmetric
        self.last = last

    def forward(self, x: Tensor) -> Tensor:
        frames = x.shape[-1]
        x = self.conv(F.glu(self.gate(x), dim=1))
        if self.external_crop:
            x = x[..., self.crop[0] : self.crop[0] + frames * self.conv.stride[0]]
        return x if self.last else F.relu(x)


@register_model("autoencoder")
class WaveAutoencoder(Denoiser):
    """Waveform U-Net denoiser (see the module docstring).

    Defaults (``channels=16, depth=5, kernel=8, stride=4, growth=2``: widths 16-32-64-128-256, total stride
    1024, 1.44 M parameters): a training step (batch 16 x 2 s, forward + backward + AdamW) takes ~0.33 s of CPU
    time (one thread). With ``growth**2 == stride`` every level costs about the same (channels x2, frames /4),
    and the cost is quadratic in ``channels``; the Demucs paper's model is ``channels=48`` (plus an LSTM), ~9x
    the cost. Needs ``kernel >= stride``; ``kernel=8, stride=4`` (Demucs) or ``kernel=6, stride=2`` pad
    symmetrically, an odd ``kernel - stride`` (e.g. Wave-U-Net-like ``kernel=15, stride=2``) works too.
    Latency (default 3412 samples, 213 ms): see ``algorithmic_latency_samples``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        channels: int = 16,
        depth: int = 5,
        kernel: int = 8,
        stride: int = 4,
        growth: float = 2.0,
        residual: bool = True,
    ):
        super().__init__(sample_rate=sample_rate)
        channels, depth, kernel, stride = int(channels), int(depth), int(kernel), int(stride)
        if channels < 1 or depth < 1:
            raise ValueError(f"channels and depth must be positive, got channels={channels}, depth={depth}")
        if stride < 1 or kernel < stride:
            raise ValueError(f"need 1 <= stride <= kernel, got kernel={kernel}, stride={stride}")
        if growth <= 0:
            raise ValueError(f"growth must be positive, got {growth}")
        self.depth, self.kernel, self.stride = depth, kernel, stride
        self.total_stride = stride ** depth
        widths = [max(1, int(round(channels * growth ** level))) for level in range(depth)]
        self.widths = widths
        self.encoder = nn.ModuleList(
            _Down(1 if level == 0 else widths[level - 1], widths[level], kernel, stride) for level in range(depth)
        )
        self.bottleneck = nn.Conv1d(widths[-1], 2 * widths[-1], 3, padding=1)
        self.decoder = nn.ModuleList(  # deepest first
            _Up(widths[level], 1 if level == 0 else widths[level - 1], kernel, stride, last=level == 0)
            for level in reversed(range(depth))
        )
        _rescale_(self)
        self.residual = bool(residual)
        if self.residual:
            # Output = input + a learnt correction that starts at zero: training starts from the identity (the
            # noisy input's scores) and only has to learn what to remove, instead of first learning to
            # reproduce speech from random weights (the seed projects' autoencoder "generated noise").
            nn.init.zeros_(self.decoder[-1].conv.weight)
            nn.init.zeros_(self.decoder[-1].conv.bias)

    @property
    def algorithmic_latency_samples(self) -> int:
        """Look-ahead of the convolutional receptive field + 1 (the convention of ``SpectralMaskDenoiser``, whose
        ``n_fft`` counts the current sample): the number of input samples, from sample t on, that output sample t
        needs, maximised over t's position in the ``stride ** depth`` grid. Computed exactly by following the
        latest input index through every layer (see ``lookahead_of``). The std normalisation uses the whole
        input and is left out: a streaming version would use a running estimate of the level, as Demucs'
        streamer does."""
        return max(self.lookahead_of(t) for t in range(self.total_stride)) + 1

    def lookahead_of(self, t: int) -> int:
        """Latest input sample index that output sample `t` depends on, minus `t` (ignoring the std and edges)."""
        s, pad_left, k = self.stride, (self.kernel - self.stride) // 2, self.kernel

        def encoder_future(level: int, j: int) -> int:  # latest input index feeding encoder output j at `level`
            for lev in reversed(range(level)):
                j = j * s - pad_left + k - 1
            return j

        def decoder_input_future(level: int, j: int) -> int:  # decoder input at `level` (>= 1) = dec + skip
            skip = encoder_future(level, j)
            if level == self.depth:
                return max(skip, encoder_future(level, j + 1))  # residual kernel-3 bottleneck
            return max(skip, decoder_input_future(level + 1, (j + pad_left) // s))

        # Output sample t of a transposed conv (cropped by pad_left) depends on input frames up to (t+pad_left)//s.
        return decoder_input_future(1, (t + pad_left) // s) - t

    def _unet(self, x: Tensor) -> Tensor:
        """(B, 1, T) with T a multiple of ``stride ** depth`` → (B, 1, T), without level normalisation."""
        skips = []
        for down in self.encoder:
            x = down(x)
            skips.append(x)
        x = x + F.glu(self.bottleneck(x), dim=1)
        for up in self.decoder:
            x = up(x + skips.pop())
        return x

    def forward(self, noisy: Tensor) -> Tensor:
        squeeze = noisy.dim() == 1
        if squeeze:
            noisy = noisy[None]
        length = noisy.shape[-1]
        x = noisy[:, None, :]
        mean = x.mean(dim=-1, keepdim=True)
        # Population std (defined for T = 1); the tiny epsilon keeps sqrt's gradient finite for silent input.
        std = ((x - mean) ** 2).mean(dim=-1, keepdim=True).add(1e-12).sqrt()
        scale = std + STD_FLOOR
        pad = (self.total_stride - length % self.total_stride) % self.total_stride
        x = F.pad(x / scale, (0, pad))
        out = self._unet(x)[:, 0, :length] * scale[:, 0]
        if self.residual:
            out = noisy + out
        return out[0] if squeeze else out
