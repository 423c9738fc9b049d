"""Conv-TasNet (Luo & Mesgarani 2019, arXiv 1809.07454), one source: speech.

As in the paper:

* encoder: ``Conv1d(1, N, L, stride L/2)`` → ReLU (no bias), a learnt non-negative "spectrogram";
* separator (TCN): layer norm of the encoder output → bottleneck ``1x1 conv`` to ``B`` channels → ``R`` repeats of
  ``X`` 1-D conv blocks with dilations 1, 2, ..., 2**(X-1); each block is ``1x1 conv (H)`` → PReLU → norm →
  depthwise conv (kernel ``P``, dilated) → PReLU → norm → a residual ``1x1 conv (B)`` and a skip
  ``1x1 conv (B)`` (the skip-connection channels Sc = B). The skips are summed → PReLU → ``1x1 conv (N)`` →
  sigmoid mask (one source);
* decoder: the masked encoder output through ``ConvTranspose1d(N, 1, L, stride L/2)`` (overlap-add, no bias);
* ``causal=False``: global layer norm (gLN: over channels and time, per utterance) and centred dilated convs;
  ``causal=True``: cumulative layer norm (cLN: over channels and all frames up to the current one) and
  left-only (causal) padding of the dilated convs.

With a bias-free encoder and decoder and a layer norm in front of the separator, the model is scale-equivariant
(``model(a * x) == a * model(x)`` for ``a > 0``, up to the norms' epsilon): no input level normalisation needed.

The encoder → separator → decoder forward is ``FilterbankDenoiser``'s; the encoder and decoder are the learned
filterbank of ``hushkit.models.filterbank`` (framing as ``ConvSTFT``: every sample is covered by exactly two frames,
any length ``T >= 1`` works, and the output is cropped back to ``T``).

Our defaults are much smaller than the paper's best (N=512, L=16 at 8 kHz, B=128, H=512, P=3, X=8, R=3), for
CPU training: see ``ConvTasNet``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import FilterbankDenoiser, capture_init, register_model
from hushkit.models.filterbank import AnalysisFilterbank, SynthesisFilterbank, check_filter_length, sigmoid_gate, \
    windowed_fourier_filters

NORM_EPS = 1e-8


class _GlobalLayerNorm(nn.GroupNorm):
    """gLN: normalise over channels and time per utterance, per-channel gain and bias (GroupNorm with one group,
    which is exactly gLN and runs as one fused kernel)."""

    def __init__(self, channels: int):
        super().__init__(1, channels, eps=NORM_EPS)


class _CumulativeLayerNorm(nn.Module):
    """cLN: normalise frame k over channels and frames 0..k (causal), per-channel gain and bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        # Cumulative statistics in float32 (a 2 s batch is ~2000 frames, well within float32's accuracy).
        step_sum = x.sum(dim=1, keepdim=True)
        step_pow = (x * x).sum(dim=1, keepdim=True)
        count = torch.ones_like(step_sum).cumsum(dim=-1) * x.shape[1]
        mean = step_sum.cumsum(dim=-1) / count
        var = (step_pow.cumsum(dim=-1) / count - mean * mean).clamp_min(0.0)
        return (x - mean) / (var + NORM_EPS).sqrt() * self.weight + self.bias


def _norm(channels: int, causal: bool) -> nn.Module:
    return _CumulativeLayerNorm(channels) if causal else _GlobalLayerNorm(channels)


class _Block(nn.Module):
    """One 1-D conv block of the TCN; returns (residual output or None, skip output)."""

    def __init__(self, B: int, H: int, P: int, dilation: int, causal: bool, last: bool):
        super().__init__()
        total = (P - 1) * dilation
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)
        symmetric = self.pad[0] == self.pad[1]
        self.in_conv = nn.Conv1d(B, H, 1)
        self.prelu1, self.norm1 = nn.PReLU(), _norm(H, causal)
        self.depthwise = nn.Conv1d(H, H, P, dilation=dilation, groups=H, padding=self.pad[0] if symmetric else 0)
        self.external_pad = not symmetric
        self.prelu2, self.norm2 = nn.PReLU(), _norm(H, causal)
        # Residual and skip 1x1 convs as one conv (same weights and sums, one kernel call); the last block of the
        # network needs no residual output.
        self.last, self.B = last, B
        self.out_conv = nn.Conv1d(H, B if last else 2 * B, 1)

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        y = self.norm1(self.prelu1(self.in_conv(x)))
        if self.external_pad:
            y = F.pad(y, self.pad)
        y = self.norm2(self.prelu2(self.depthwise(y)))
        y = self.out_conv(y)
        if self.last:
            return None, y
        return x + y[:, : self.B], y[:, self.B :]


@register_model("convtasnet")
class ConvTasNet(FilterbankDenoiser):
    """Conv-TasNet with a sigmoid mask for one source (see the module docstring).

    Defaults ``N=128, L=64, B=32, H=48, P=3, X=6, R=2`` (85 k parameters) are cut down from the paper's best
    (N=512, L=16 at 8 kHz, B=128, H=512, X=8, R=3: 5 M parameters, ~100x the compute) so that it trains within a
    CPU budget. The cost is in the blocks' per-frame ops on ``H``
    channels (PReLU, norms, depthwise conv are memory-bound), so it scales with ``frames x H x blocks``: ``L=64``
    (4 ms window, 2 ms hop) halves the frames of ``L=32`` (the paper's 2 ms window), and ``H=64`` already costs
    ~1.4x. The receptive field is
    ``1 + R (P - 1) (2^X - 1)`` frames: 253 frames of 32 samples, ~0.5 s, half of it look-ahead if not causal.
    """

    @capture_init
    def __init__(
        self,
        sample_rate: int = 16000,
        N: int = 128,
        L: int = 64,
        B: int = 32,
        H: int = 48,
        P: int = 3,
        X: int = 6,
        R: int = 2,
        causal: bool = False,
        identity_init: bool = True,
    ):
        super().__init__(sample_rate=sample_rate)
        N, B, H, P, X, R = (int(v) for v in (N, B, H, P, X, R))
        L = check_filter_length(L, "L (filter length, stride L/2)")
        if min(N, B, H, P, X, R) < 1:
            raise ValueError(f"N, B, H, P, X and R must be positive, got {dict(N=N, B=B, H=H, P=P, X=X, R=R)}")
        self.N, self.L, self.stride, self.P, self.X, self.R = N, L, L // 2, P, X, R
        self.causal = bool(causal)
        # The filterbank is the model's own encoder/decoder pair (the paper's names, the checkpoint's keys; see
        # encode / combine / decode), created before and after the separator: random initialisation draws in
        # this order.
        self.encoder = AnalysisFilterbank(N, L)
        self.input_norm = _norm(N, self.causal)
        self.bottleneck = nn.Conv1d(N, B, 1)
        self.blocks = nn.ModuleList(
            _Block(B, H, P, 2 ** x, self.causal, last=(r == R - 1 and x == X - 1)) for r in range(R) for x in range(X)
        )
        self.mask_prelu = nn.PReLU()
        self.mask_conv = nn.Conv1d(B, N, 1)
        self.decoder = SynthesisFilterbank(N, L)
        if identity_init and N >= 2 * L:
            self._init_as_identity()

    @torch.no_grad()
    def _init_as_identity(self) -> None:
        """Start the learned encoder/decoder as a perfect-reconstruction pair, so a short training run starts from
        the noisy input's quality (mask 0.5 everywhere = the input at half level, same SI-SDR) instead of from a
        random decoder. Filters 0..L-1 are the orthonormal real Fourier basis (cosines and sines of the L/2 + 1
        frequencies of an L-point DFT) under a sqrt-Hann window, i.e. an STFT; filters L..2L-1 their negatives, so
        ReLU(w.x) - ReLU(-w.x) = w.x survives the encoder's ReLU; the decoder holds the same windowed basis (and its
        negative), and sqrt-Hann squared overlap-adds to 1 at hop L/2. Being frequency-selective from the first
        step, the mask can suppress noise by band at once, and training adapts the filters from there (a random
        orthonormal start learns several times slower: docs/history.md)."""
        L = self.L
        filters = windowed_fourier_filters(L)  # (L filters, L taps)
        self.encoder.weight[: 2 * L, 0] = torch.cat([filters, -filters])
        self.decoder.weight[: 2 * L, 0] = torch.cat([filters, -filters])
        self.decoder.weight[2 * L :].zero_()
        self.mask_conv.weight.zero_()  # mask exactly 0.5 at the start; gradients still reach every layer
        self.mask_conv.bias.zero_()

    @property
    def receptive_field_frames(self) -> int:
        """Frames of encoder output that one mask frame sees: 1 + R (P - 1) (2^X - 1)."""
        return 1 + self.R * (self.P - 1) * (2 ** self.X - 1)

    @property
    def lookahead_frames(self) -> int:
        """Future frames one mask frame sees: 0 if causal, else the right padding summed over the blocks."""
        if self.causal:
            return 0
        return self.R * sum((self.P - 1) * 2 ** x - (self.P - 1) * 2 ** x // 2 for x in range(self.X))

    @property
    def algorithmic_latency_samples(self) -> int:
        """Look-ahead + 1 (the convention of ``SpectralMaskDenoiser``, whose ``n_fft`` counts the current sample):
        the latest frame covering sample t ends ``L - 1`` samples later, and its mask sees ``lookahead_frames``
        more frames of ``L/2`` samples: ``L + lookahead_frames * L/2`` (causal: ``L``). The non-causal gLN's
        utterance-level statistics are left out (a streaming version would use cLN, i.e. ``causal=True``)."""
        return self.encoder.latency_samples(self.lookahead_frames)

    def encode(self, x: Tensor) -> Tensor:
        return F.relu(self.encoder(x))  # the paper's non-negative representation (a learnt "spectrogram")

    def masker(self, x: Tensor) -> Tensor:
        """The separator (TCN) over the layer-normalised encoder output: the mask's logits."""
        x = self.bottleneck(x)
        skips = None
        for block in self.blocks:
            residual, skip = block(x)
            skips = skip if skips is None else skips + skip
            if residual is not None:
                x = residual
        return self.mask_conv(self.mask_prelu(skips))

    def combine(self, coefficients: Tensor, mask_logits: Tensor) -> Tensor:
        return sigmoid_gate(coefficients, mask_logits)

    def decode(self, coefficients: Tensor, samples: int) -> Tensor:
        return self.decoder(coefficients, samples)
