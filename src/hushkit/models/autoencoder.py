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
* weights are rescaled at initialisation (Demucs' ``rescale=0.1``), which speeds up early training (without
  level norms; with them, the default init).

Our variant: the bottleneck is one residual ``Conv1d(kernel 3)`` → GLU block instead of a BiLSTM (cheap, ONNX-
friendly, widens the context by one bottleneck frame each side); no up-sampling of the input; every strided
conv is padded by ``kernel - stride`` (left ``(kernel - stride) // 2``) so a level maps ``n * stride`` samples
to exactly ``n`` frames and back. The input is zero-padded on the right to a multiple of ``stride ** depth`` and
the output cropped back, so any length ``T >= 1`` works.

By default the U-Net does not see raw samples but the coefficients of a learned filterbank that starts as a
windowed Fourier basis (an STFT), with a layer norm in every level, and gates the coefficients (see
``WaveAutoencoder``): the encoder-decoder is the same, but it learns within a CPU budget where the sample-domain
version does not. ``filterbank=0, norm=False`` is the sample-domain Demucs-like model. Either way the U-Net is the
masker of a ``FilterbankDenoiser``, whose forward frames, normalises and reconstructs around it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import FilterbankDenoiser, capture_init, register_model
from hushkit.models.filterbank import check_filterbank_argument

# Added to the input's standard deviation before dividing by it (Demucs: 1e-3). 1e-5 keeps the scale error at
# -35 dBFS (RMS ~0.018) below 0.1 %, and all-zero input at exactly zero.
STD_FLOOR = 1e-5
NORM_EPS = 1e-8
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


def _norm(channels: int, norm: bool) -> nn.Module:
    """Layer norm over channels and time per example (GroupNorm with one group), or nothing."""
    return nn.GroupNorm(1, channels, eps=NORM_EPS) if norm else nn.Identity()


class _Down(nn.Module):
    """One encoder level: n*stride samples → n frames."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, norm: bool = False):
        super().__init__()
        self.pad = ((kernel - stride) // 2, kernel - stride - (kernel - stride) // 2)
        symmetric = self.pad[0] == self.pad[1]
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride, padding=self.pad[0] if symmetric else 0)
        self.external_pad = not symmetric
        self.norm = _norm(out_channels, norm)
        self.gate = nn.Conv1d(out_channels, 2 * out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.external_pad:
            x = F.pad(x, self.pad)
        return F.glu(self.gate(F.relu(self.norm(self.conv(x)))), dim=1)


class _Up(nn.Module):
    """One decoder level: n frames → n*stride samples."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, last: bool, norm: bool = False):
        super().__init__()
        self.crop = ((kernel - stride) // 2, kernel - stride - (kernel - stride) // 2)
        symmetric = self.crop[0] == self.crop[1]
        self.norm = _norm(in_channels, norm)
        self.gate = nn.Conv1d(in_channels, 2 * in_channels, 1)
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel, stride,
                                       padding=self.crop[0] if symmetric else 0)
        self.external_crop = not symmetric
        self.last = last

    def forward(self, x: Tensor) -> Tensor:
        frames = x.shape[-1]
        x = self.conv(F.glu(self.gate(self.norm(x)), dim=1))
        if self.external_crop:
            x = x[..., self.crop[0] : self.crop[0] + frames * self.conv.stride[0]]
        return x if self.last else F.relu(x)


@register_model("autoencoder")
class WaveAutoencoder(FilterbankDenoiser):
    """Waveform U-Net denoiser (see the module docstring), in one of two domains:

    * ``filterbank=L`` (default 64, 4 ms at 16 kHz): a learned filterbank (``Conv1d(1, L, L, stride L/2)``, its
      mirror ``ConvTranspose1d`` for synthesis) that starts as the windowed Fourier basis, i.e. an STFT and its
      exact inverse (``hushkit.models.filterbank``). The U-Net runs over the L coefficient channels at the frame
      rate (after a layer norm of its input) and its last level outputs one sigmoid gate per coefficient, which
      multiplies the coefficients before synthesis. Frequency-selective from the first step, it learns within a
      CPU budget where the sample-domain U-Net below barely does (docs/history.md has the comparison).
    * ``filterbank=0``: the U-Net on raw samples (Demucs-like, ``kernel=8, stride=4, depth=5``), with
      ``residual=True`` adding the input to its output (a learnt correction that starts at zero, so training
      starts from the identity instead of from noise).

    ``norm=True`` puts a layer norm (GroupNorm, one group) in every level: with it the U-Net learns several times
    faster in a short run. The level norms and the input's std normalisation use whole-utterance statistics; a
    streaming version would use running ones. With ``growth**2 == stride`` every level costs about the same.
    Defaults (``channels=32, depth=4, kernel=4, stride=2, growth=2``: widths 32-64-128-256 over 500 frames a
    second): 1.1 M parameters (`python benchmarks/models.py` prints its cost). Needs
    ``kernel >= stride``; an odd ``kernel - stride`` pads asymmetrically and works too.
    """

    @capture_init
    def __init__(
        self,
        sample_rate: int = 16000,
        channels: int = 32,
        depth: int = 4,
        kernel: int = 4,
        stride: int = 2,
        growth: float = 2.0,
        residual: bool = True,
        filterbank: int = 64,
        norm: bool = True,
    ):
        super().__init__(sample_rate=sample_rate)
        channels, depth, kernel, stride = (int(v) for v in (channels, depth, kernel, stride))
        filterbank = check_filterbank_argument(filterbank)
        if channels < 1 or depth < 1:
            raise ValueError(f"channels and depth must be positive, got channels={channels}, depth={depth}")
        if stride < 1 or kernel < stride:
            raise ValueError(f"need 1 <= stride <= kernel, got kernel={kernel}, stride={stride}")
        if growth <= 0:
            raise ValueError(f"growth must be positive, got {growth}")
        self.depth, self.kernel, self.stride, self.filterbank = depth, kernel, stride, filterbank
        self.total_stride = self.frame_multiple = stride ** depth
        outer = filterbank or 1  # channels of the U-Net's input and output
        widths = [max(1, int(round(channels * growth ** level))) for level in range(depth)]
        self.widths = widths
        self.encoder = nn.ModuleList(
            _Down(outer if level == 0 else widths[level - 1], widths[level], kernel, stride, norm)
            for level in range(depth)
        )
        self.bottleneck = nn.Conv1d(widths[-1], 2 * widths[-1], 3, padding=1)
        self.decoder = nn.ModuleList(  # deepest first
            _Up(widths[level], outer if level == 0 else widths[level - 1], kernel, stride, last=level == 0,
                norm=norm)
            for level in reversed(range(depth))
        )
        if not norm:  # Demucs' rescaling stands in for the norms; with them, PyTorch's default init (as measured)
            _rescale_(self)
        self.residual = bool(residual) and not filterbank
        if self.residual:
            # Output = input + a learnt correction that starts at zero: training starts from the identity (the
            # noisy input's scores) and only has to learn what to remove, instead of first learning to
            # reproduce speech from random weights (an untrained decoder outputs noise).
            nn.init.zeros_(self.decoder[-1].conv.weight)
            nn.init.zeros_(self.decoder[-1].conv.bias)
        self.add_domain(filterbank, self.residual)  # after the rescaling: the Fourier start stays exact

    @property
    def algorithmic_latency_samples(self) -> int:
        """Look-ahead of the convolutional receptive field + 1 (the convention of ``SpectralMaskDenoiser``, whose
        ``n_fft`` counts the current sample), maximised over the position in the ``stride ** depth`` grid, from
        the U-Net's look-ahead in its own steps (``lookahead_of``, computed exactly by following the latest input
        index through every layer). On samples: that + 1. With a filterbank (as ``ConvTasNet``): the latest
        frame covering a sample ends ``L - 1`` samples later and its gate sees the U-Net's look-ahead in frames
        of ``L/2`` samples more. The utterance-level std and norms are left out (a streaming version would use
        running estimates, as Demucs' streamer does)."""
        return self.bank.latency_samples(max(self.lookahead_of(t) for t in range(self.total_stride)))

    def lookahead_of(self, t: int) -> int:
        """Latest U-Net input step (sample or frame) that output step `t` depends on, minus `t` (ignoring the
        utterance-level statistics and edges)."""
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

    def masker(self, x: Tensor) -> Tensor:
        """The U-Net: (B, C, T) with T a multiple of ``stride ** depth`` → (B, C, T), C = 1 (samples) or the
        filterbank's channels."""
        skips = []
        for down in self.encoder:
            x = down(x)
            skips.append(x)
        x = x + F.glu(self.bottleneck(x), dim=1)
        for up in self.decoder:
            x = up(x + skips.pop())
        return x

    def normalise_level(self, noisy: Tensor) -> tuple[Tensor, Tensor]:
        mean = noisy.mean(dim=-1, keepdim=True)
        # Population std (defined for T = 1); the tiny epsilon keeps sqrt's gradient finite for silent input.
        std = ((noisy - mean) ** 2).mean(dim=-1, keepdim=True).add(1e-12).sqrt()
        scale = std + STD_FLOOR
        return noisy / scale, scale

    def restore_level(self, enhanced: Tensor, scale: Tensor) -> Tensor:
        return enhanced * scale
