"""SEGAN: Speech Enhancement Generative Adversarial Network (Pascual, Bonafonte & Serrà 2017, arXiv 1703.09452).

The registered model ``"segan"`` is the GENERATOR, a waveform-to-waveform fully convolutional encoder-decoder:

* encoder: ``len(channels)`` strided 1-D convolutions (kernel ``kernel_size``, stride 2, "same" padding
  ``kernel_size // 2``), each followed by a PReLU (paper: 11 layers, kernel 31, widths
  16-32-32-64-64-128-128-256-256-512-1024);
* bottleneck: the latent ``z`` (``z_channels`` channels, same length as the code) is concatenated to the code;
* decoder: the mirror image, transposed convolutions (stride 2, ``output_padding=1`` so every layer exactly doubles
  the length) with PReLU, each layer's input being the previous decoder output concatenated with the mirrored
  encoder layer's output (skip connections); the last layer has one output channel and no activation. With the
  paper's 11 encoder layers that is 22 convolutional layers in total;
* the input is zero-padded on the right to a multiple of the total stride ``2 ** len(channels)`` and the output
  is cropped back to ``T``, so any length ``T >= 1`` works.

Choices of ours, all constructor arguments:

* ``z`` is sampled from N(0, 1) in training mode and set to zero (the prior's mean) in eval mode, so inference is
  deterministic: validation, checkpoint round trips and ONNX export (one graph, no random node) are exact. The
  paper samples ``z`` at test time too; pix2pix-style generators with skip connections largely learn to ignore the
  noise anyway, and the mean is the natural point estimate. In eval mode the z-channel slice of the first decoder
  kernel multiplies zeros, so it is skipped (the same sums, and no zeros tensor of dynamic shape in the graph).
* ``normalize=True``: the input is divided by its per-example RMS (``sqrt(mean(x^2) + eps^2)``, finite and
  gradient-safe on all-zero input) and the output multiplied by it, so a -35 dBFS and a -10 dBFS mixture look the
  same to the network (the paper's tanh output assumed a fixed level; ours is linear because a normalised speech
  waveform has peaks far above 1). The gain is utterance-level: a streaming implementation would use a running RMS.
* ``preemphasis`` (paper: 0.95) applies ``x[n] - a x[n-1]`` inside ``forward`` and undoes it at the output with the
  exact causal inverse ``y[n] + a y[n-1] + a^2 y[n-2] + ...``, truncated where ``a^k < 1e-7`` (one conv1d: exports
  to ONNX). Default OFF (0.0): in the paper both the L1 loss and the discriminator worked in the pre-emphasised
  domain, so the filter re-weighted the loss towards high frequencies; here the loss is computed by the training
  loop on our de-emphasised output, so the two fixed filters only change the parametrisation, and the inverse
  filter's +26 dB gain at DC (``1 / (1 - 0.95)``) amplifies any low-frequency error of the decoder (the known
  SEGAN low-frequency hum). Turn it on to reproduce the paper.
* Width: the paper's generator (73 M parameters in this layout, 1024 channels at the bottleneck) costs several
  seconds a step on 2 CPU cores; the default keeps the 11 layers and kernel 31 but a quarter of the paper's widths
  (see ``DEFAULT_CHANNELS``), and a discriminator of half those widths.

* ``filterbank=L`` (default 0: off) runs the same strided encoder-decoder over the frames of a learned
  filterbank that starts as the windowed Fourier basis (``hushkit.models.filterbank``, as the waveform
  autoencoder), L channels in and out, and gates the filterbank's coefficients with the decoder's sigmoid output
  instead of adding a waveform correction; ``norm=True`` puts a layer norm (GroupNorm, one group) before every
  PReLU. The discriminator still judges waveforms. On the CPU budget the sample-domain generator barely moves in a
  few hundred steps (see params.yaml and the README for the measured figures); the pipeline trains this variant.

The DISCRIMINATOR (``SEGANDiscriminator``, built by ``SEGAN.make_discriminator()``) is the training loop's hook
for adversarial training: see ``hushkit.training.adversarial``. It is not part of the Denoiser's weights, its
checkpoint, or its ONNX graph (inference needs the generator only).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from hushkit.models.base import FilterbankDenoiser, capture_init, register_model
from hushkit.models.filterbank import check_filterbank_argument

PAPER_CHANNELS = (16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 1024)
# A quarter of the paper's widths (first layers kept at 8 so no layer is trivially thin): the 11 layers, the
# kernel and the receptive field of the paper at ~1/16 of its compute; see SEGAN's docstring for the timings.
DEFAULT_CHANNELS = (8, 8, 8, 16, 16, 32, 32, 64, 64, 128, 256)


def _rms(x: Tensor, eps: float) -> Tensor:
    """Per-example RMS of (B, T) audio, (B, 1); never zero, and differentiable at zero."""
    return (x.pow(2).mean(dim=-1, keepdim=True) + eps * eps).sqrt()


def _check_channels(channels: Sequence[int], what: str) -> list[int]:
    channels = [int(c) for c in channels]
    if not channels or any(c < 1 for c in channels):
        raise ValueError(f"{what} must be a non-empty list of positive widths, got {channels}")
    return channels


class SEGANDiscriminator(nn.Module):
    """D(noisy, candidate) → one realness score per example, shape (B,).

    The two waveforms are stacked as a 2-channel input (paper: the noisy signal conditions D, the candidate is the
    clean or the enhanced signal), both divided by one gain, their joint RMS (level invariance, as the generator;
    the candidate keeps its level relative to the noisy input, which D should see). Then ``len(channels)`` strided
    convs (kernel ``kernel_size``, stride 2) with LeakyReLU(0.3), a 1x1 conv to one channel and a linear layer
    over ``fc_frames`` time steps: the paper's layout, where a 16384-sample input leaves exactly 8 frames.
    Any length works: the 1-channel map is average-pooled to ``fc_frames`` steps (the identity for the paper's
    16384 samples) before the linear layer.

    Normalisation: spectral normalisation of every conv and linear weight (Miyato et al. 2018) instead of the
    paper's virtual batch norm. VBN needs a reference batch carried along with every call; plain BatchNorm, with
    real and fake pairs passed in separate batches as the LSGAN losses do, lets D tell them apart by batch
    statistics and makes the score of one example depend on the others. Spectral norm keeps each score a function
    of its own example, behaves the same in train and eval mode, and bounds D's Lipschitz constant, which keeps
    the adversarial gradient to the generator well scaled.
    """

    def __init__(self, channels: Sequence[int] = DEFAULT_CHANNELS, kernel_size: int = 31, fc_frames: int = 8,
                 negative_slope: float = 0.3, eps: float = 1e-5):
        super().__init__()
        channels = _check_channels(channels, "discriminator channels")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (symmetric 'same' padding), got {kernel_size}")
        if fc_frames < 1:
            raise ValueError(f"fc_frames must be positive, got {fc_frames}")
        self.channels, self.kernel_size, self.fc_frames = channels, int(kernel_size), int(fc_frames)
        self.negative_slope, self.eps = float(negative_slope), float(eps)
        convs, in_channels = [], 2
        for out_channels in channels:
            convs.append(spectral_norm(nn.Conv1d(in_channels, out_channels, self.kernel_size, stride=2,
                                                 padding=self.kernel_size // 2)))
            in_channels = out_channels
        self.convs = nn.ModuleList(convs)
        self.reduce = spectral_norm(nn.Conv1d(in_channels, 1, 1))
        self.fc = spectral_norm(nn.Linear(self.fc_frames, 1))

    def forward(self, noisy: Tensor, candidate: Tensor) -> Tensor:
        if noisy.dim() == 1:
            noisy, candidate = noisy[None], candidate[None]
        if noisy.shape != candidate.shape or noisy.dim() != 2:
            raise ValueError(f"noisy and candidate must both be (batch, samples), got {tuple(noisy.shape)} and "
                             f"{tuple(candidate.shape)}")
        # One gain for both channels (their joint RMS): level-invariant, keeps the candidate's level relative to
        # the noisy input (which D should judge), and finite when either signal is silent.
        scale = (0.5 * (noisy.pow(2).mean(-1, keepdim=True) + candidate.pow(2).mean(-1, keepdim=True))
                 + self.eps * self.eps).sqrt()
        x = torch.stack([noisy / scale, candidate / scale], dim=1)  # (B, 2, T)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
        x = F.adaptive_avg_pool1d(self.reduce(x), self.fc_frames)  # (B, 1, fc_frames)
        return self.fc(x[:, 0]).reshape(-1)


@register_model("segan")
class SEGAN(FilterbankDenoiser):
    """The SEGAN generator (see the module docstring); ``make_discriminator()`` builds its discriminator.

    ``channels``: encoder widths, one per strided layer (the decoder mirrors them); depth = ``len(channels)``,
    total stride ``2 ** depth`` (inputs are padded to a multiple of it). ``z_channels``: the latent's width at the
    bottleneck (0: no latent). ``d_channels``: the discriminator's widths (None: half the encoder's, at least 4;
    pass ``channels`` for the paper's D = encoder layout), ``d_fc_frames`` its linear layer's input (paper: 8).
    The paper: ``channels=PAPER_CHANNELS, z_channels=1024, preemphasis=0.95, d_channels=PAPER_CHANNELS``.

    Default size: generator 4.57 M parameters (the paper's layout: 73 M), discriminator 0.38 M
    (`python benchmarks/train_budget.py` measures a combined training step). Cost grows with the square of the widths
    (twice the default widths: ~4x) and linearly with the kernel; a discriminator at the generator's full widths
    makes the step ~1.4x longer.
    """

    @capture_init
    def __init__(
        self,
        sample_rate: int = 16000,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        kernel_size: int = 31,
        z_channels: int = 256,
        preemphasis: float = 0.0,
        normalize: bool = True,
        eps: float = 1e-5,
        d_channels: Sequence[int] | None = None,
        d_fc_frames: int = 8,
        residual: bool = True,
        filterbank: int = 0,
        norm: bool = False,
    ):
        super().__init__(sample_rate=sample_rate)
        channels = _check_channels(channels, "channels")
        filterbank = check_filterbank_argument(filterbank)
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3 (symmetric 'same' padding), got {kernel_size}")
        if z_channels < 0:
            raise ValueError(f"z_channels must be >= 0, got {z_channels}")
        if not 0.0 <= preemphasis < 1.0:
            raise ValueError(f"preemphasis must be in [0, 1), got {preemphasis}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if d_channels is not None:
            _check_channels(d_channels, "d_channels")
        self.channels, self.kernel_size, self.z_channels = channels, int(kernel_size), int(z_channels)
        self.depth, self.stride = len(channels), 2 ** len(channels)
        self.frame_multiple = self.stride
        self.preemphasis, self.normalize, self.eps = float(preemphasis), bool(normalize), float(eps)
        pad = self.kernel_size // 2
        self.filterbank = filterbank
        outer = self.filterbank or 1  # the encoder's input and decoder's output channels

        def act(width: int) -> nn.Module:  # PReLU, after a layer norm (GroupNorm, one group) with `norm`
            return nn.Sequential(nn.GroupNorm(1, width, eps=1e-8), nn.PReLU(width)) if norm else nn.PReLU(width)

        encoder, in_channels = [], outer
        for out_channels in channels:
            encoder.append(nn.Sequential(nn.Conv1d(in_channels, out_channels, self.kernel_size, stride=2,
                                                   padding=pad), act(out_channels)))
            in_channels = out_channels
        self.encoder = nn.ModuleList(encoder)

        # Decoder layer i (i = 0 at the bottleneck) undoes encoder layer depth-1-i. Its input: the code + z
        # (i = 0), else the previous decoder output + the skip from encoder layer depth-1-i (same width).
        decoder, acts = [], []
        for i in range(self.depth):
            if i == 0:
                in_ch = channels[-1] + self.z_channels
            else:
                in_ch = 2 * channels[self.depth - 1 - i]
            out_ch = channels[self.depth - 2 - i] if i < self.depth - 1 else outer
            decoder.append(nn.ConvTranspose1d(in_ch, out_ch, self.kernel_size, stride=2, padding=pad,
                                              output_padding=1))
            if i < self.depth - 1:
                acts.append(act(out_ch))
        self.decoder = nn.ModuleList(decoder)
        self.decoder_acts = nn.ModuleList(acts)
        self.residual = bool(residual) and not self.filterbank
        self.add_domain(self.filterbank, self.residual)  # filterbank frames whose coefficients it gates, or samples
        if self.residual:
            # Output = (normalised) input + a correction that starts at zero: a short run starts from the noisy
            # input's quality and learns what to remove (the paper's generator starts from random output).
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)

        if self.preemphasis > 0:
            # Causal FIR inverse of the pre-emphasis, exact up to a^taps < 1e-7 (relative).
            taps = int(math.ceil(math.log(1e-7) / math.log(self.preemphasis))) + 1
            kernel = self.preemphasis ** torch.arange(taps - 1, -1, -1, dtype=torch.float64)
            self.register_buffer("deemphasis_kernel", kernel[None, None].float(), persistent=False)
        if d_channels is None:  # half the encoder's widths (cost: see the class docstring)
            d_channels = [max(4, (c + 1) // 2) for c in channels]
        self.d_config = {"channels": [int(c) for c in d_channels],
                         "kernel_size": self.kernel_size, "fc_frames": int(d_fc_frames), "eps": self.eps}

    @property
    def num_conv_layers(self) -> int:
        """Convolutional layers of the generator: encoder + decoder (paper: 22)."""
        return len(self.encoder) + len(self.decoder)

    @property
    def algorithmic_latency_samples(self) -> int:
        # Look-ahead of the receptive field: each encoder layer reaches kernel//2 steps of its input ahead
        # (kernel//2 * 2^l samples at level l), and each decoder layer as far again; the RMS gain is utterance-level.
        # With a filterbank those steps are frames.
        steps = 2 * (self.kernel_size // 2) * (self.stride - 1)
        return self.bank.latency_samples(steps) if self.filterbank else steps

    def make_discriminator(self) -> SEGANDiscriminator:
        """A fresh discriminator sized from this generator's config (the training loop's adversarial hook)."""
        return SEGANDiscriminator(**self.d_config)

    def _preemphasise(self, x: Tensor) -> Tensor:
        return torch.cat([x[:, :1], x[:, 1:] - self.preemphasis * x[:, :-1]], dim=1)

    def _deemphasise(self, y: Tensor) -> Tensor:
        taps = self.deemphasis_kernel.shape[-1]
        return F.conv1d(F.pad(y[:, None], (taps - 1, 0)), self.deemphasis_kernel)[:, 0]

    def normalise_level(self, noisy: Tensor) -> tuple[Tensor, Tensor | None]:
        x = self._preemphasise(noisy) if self.preemphasis > 0 else noisy
        if not self.normalize:
            return x, None
        scale = _rms(x, self.eps)
        return x / scale, scale

    def restore_level(self, y: Tensor, scale: Tensor | None) -> Tensor:
        if scale is not None:
            y = y * scale
        return self._deemphasise(y) if self.preemphasis > 0 else y

    def masker(self, x: Tensor) -> Tensor:
        """The strided encoder-decoder with skips over (B, C, frames), frames a multiple of ``2 ** depth``, the
        latent z at the bottleneck (sampled in training, zero in eval)."""
        skips = []
        for layer in self.encoder:
            x = layer(x)
            skips.append(x)
        for i, deconv in enumerate(self.decoder):
            if i == 0:
                if self.z_channels and self.training:
                    z = torch.randn(x.shape[0], self.z_channels, x.shape[-1], device=x.device, dtype=x.dtype)
                    x = deconv(torch.cat([x, z], dim=1))
                else:  # z = 0: its kernel slice contributes nothing
                    x = F.conv_transpose1d(x, deconv.weight[: self.channels[-1]], deconv.bias, stride=2,
                                           padding=deconv.padding, output_padding=deconv.output_padding)
            else:
                x = deconv(torch.cat([x, skips[self.depth - 1 - i]], dim=1))
            if i < self.depth - 1:
                x = self.decoder_acts[i](x)
        return x
