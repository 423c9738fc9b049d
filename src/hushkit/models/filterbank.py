"""Learned filterbanks: the encoder and decoder of the models that map waveforms through frames of learned filters
(Conv-TasNet, the waveform autoencoder, SEGAN's filterbank variant), and the windowed Fourier basis they start from.

* ``AnalysisFilterbank`` (encoder): a bias-free strided conv of ``n_filters`` filters of ``length`` taps at hop
  ``length / 2``, which frames the signal itself; ``SynthesisFilterbank`` (decoder): its transposed conv
  (overlap-add), cropped back to the analysed samples.
* ``FourierFilterbank``: such a pair of ``length`` filters starting as the windowed Fourier basis (an STFT and its
  exact inverse), whose coefficients a masker gates; ``SampleFrames``: the same interface on raw samples (one
  channel, no filters), where the masker's output is the waveform itself.

A learned filterbank starting from random filters is not frequency-selective, so in a short training run the
network behind it cannot yet tell speech bands from noise bands; starting from the Fourier basis it can from the
first step, and training adapts the filters from there (measured in ConvTasNet's and WaveAutoencoder's docs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_filter_length(length: int, what: str = "filter length") -> int:
    """`length` as an int; ValueError naming `what` unless it is even and >= 2 (the hop is half of it)."""
    if int(length) != length or length < 2 or length % 2:
        raise ValueError(f"{what} must be an even integer >= 2, got {length}")
    return int(length)


def check_filterbank_argument(filterbank: int) -> int:
    """A model's ``filterbank`` argument as an int: 0 (run on samples) or the length of its Fourier filterbank."""
    if filterbank and (int(filterbank) != filterbank or filterbank < 2 or filterbank % 2):
        raise ValueError(f"filterbank must be 0 (samples) or an even length >= 2, got {filterbank}")
    return int(filterbank)


def fourier_basis(L: int) -> Tensor:
    """The L-point real DFT as an orthonormal (L, L) float64 matrix, one basis vector per row, lowest frequency
    first: the constant, then cos and sin of each frequency 1 .. L/2 - 1, then the alternating Nyquist vector."""
    n = torch.arange(L, dtype=torch.float64)
    rows = [torch.full((L,), 1.0, dtype=torch.float64) / L ** 0.5]
    for k in range(1, L // 2):
        angle = 2.0 * torch.pi * k * n / L
        rows += [torch.cos(angle) * (2.0 / L) ** 0.5, torch.sin(angle) * (2.0 / L) ** 0.5]
    rows.append(torch.cos(torch.pi * n) / L ** 0.5)
    return torch.stack(rows)


def windowed_fourier_filters(L: int) -> Tensor:
    """(L filters, L taps) float32: the Fourier basis under a sqrt-Hann window. Used as both the analysis filters
    (a Conv1d with stride L/2) and the synthesis filters (a ConvTranspose1d with stride L/2), the pair reconstructs
    perfectly: each frame gives back its samples times the window squared (Hann), and Hann overlap-adds to 1 at
    hop L/2."""
    check_filter_length(L)
    window = torch.hann_window(L, periodic=True, dtype=torch.float64).sqrt()
    return (fourier_basis(L) * window).float()


def sigmoid_gate(coefficients: Tensor, logits: Tensor) -> Tensor:
    """A masker's output as a gate (a mask in [0, 1]) per coefficient: ``coefficients * sigmoid(logits)``."""
    return coefficients * torch.sigmoid(logits)


class AnalysisFilterbank(nn.Conv1d):
    """Encoder: (B, 1, T) → (B, n_filters, frames), ``n_filters`` learned filters of ``length`` taps at hop
    ``length / 2``, no bias.

    Framing as ``ConvSTFT``: the signal is zero-padded by ``length - hop`` on the left and to the end of the last
    frame on the right, so every sample lies in exactly two frames and any ``T >= 1`` works; ``multiple=m``
    appends frames until their count is a multiple of ``m`` (for a masker that strides over frames). Frame ``k``
    covers samples ``[k*hop - (length - hop), k*hop + hop)``.
    """

    def __init__(self, n_filters: int, length: int):
        length = check_filter_length(length)
        super().__init__(1, int(n_filters), length, stride=length // 2, bias=False)
        self.length, self.hop = length, length // 2

    def forward(self, x: Tensor, multiple: int = 1) -> Tensor:
        samples = x.shape[-1]
        frames = (samples - 1) // self.hop + 2
        extra = (multiple - frames % multiple) % multiple
        right = self.length - 1 - (samples - 1) % self.hop + extra * self.hop
        return super().forward(F.pad(x, (self.length - self.hop, right)))

    def latency_samples(self, lookahead_frames: int) -> int:
        """Algorithmic latency (look-ahead + 1, counting the current sample) of a model that looks
        `lookahead_frames` frames ahead on these coefficients: the latest frame covering a sample ends
        ``length - 1`` samples later, and each frame of look-ahead adds a hop."""
        return self.length + lookahead_frames * self.hop


class SynthesisFilterbank(nn.ConvTranspose1d):
    """Decoder: (B, n_filters, frames) → (B, samples), the transposed conv of ``AnalysisFilterbank`` (overlap-add
    at hop ``length / 2``, no bias), cropped to the samples the encoder analysed."""

    def __init__(self, n_filters: int, length: int):
        length = check_filter_length(length)
        super().__init__(int(n_filters), 1, length, stride=length // 2, bias=False)
        self.left = length - length // 2  # the encoder's left padding

    def forward(self, coefficients: Tensor, samples: int) -> Tensor:
        return super().forward(coefficients)[:, 0, self.left : self.left + samples]


class FourierFilterbank(nn.Module):
    """A learned encoder/decoder pair of ``length`` filters at hop ``length / 2`` that starts as the windowed
    Fourier basis: ``synthesise(analyse(x), T) == x`` at initialisation. The masker's output are logits of a
    gate per coefficient: ``combine`` multiplies the coefficients by their sigmoid."""

    def __init__(self, length: int):
        super().__init__()
        filters = windowed_fourier_filters(length)
        self.length, self.hop = int(length), int(length) // 2
        self.analysis = AnalysisFilterbank(self.length, self.length)
        self.synthesis = SynthesisFilterbank(self.length, self.length)
        with torch.no_grad():
            self.analysis.weight[:, 0] = filters
            self.synthesis.weight[:, 0] = filters

    def analyse(self, x: Tensor, multiple: int = 1) -> Tensor:
        """(B, 1, T) → (B, length, frames) coefficients, ``frames`` a multiple of `multiple`."""
        return self.analysis(x, multiple)

    @staticmethod
    def combine(coefficients: Tensor, logits: Tensor) -> Tensor:
        return sigmoid_gate(coefficients, logits)

    def synthesise(self, coefficients: Tensor, samples: int) -> Tensor:
        """(B, length, frames) → (B, samples): overlap-add, cropped to the analysed signal."""
        return self.synthesis(coefficients, samples)

    def latency_samples(self, lookahead_frames: int) -> int:
        return self.analysis.latency_samples(lookahead_frames)


class SampleFrames(nn.Module):
    """``FourierFilterbank``'s interface on raw samples: the "coefficients" are the signal itself, one channel,
    zero-padded on the right to a multiple of the masker's stride. The masker's output is the waveform, or with
    ``residual`` a correction added to the input (which training starts from, when the masker's last layer starts
    at zero). No parameters."""

    def __init__(self, residual: bool):
        super().__init__()
        self.residual = bool(residual)

    @staticmethod
    def analyse(x: Tensor, multiple: int = 1) -> Tensor:
        return F.pad(x, (0, (multiple - x.shape[-1] % multiple) % multiple))

    def combine(self, samples: Tensor, estimate: Tensor) -> Tensor:
        return estimate + samples if self.residual else estimate

    @staticmethod
    def synthesise(samples: Tensor, length: int) -> Tensor:
        return samples[:, 0, :length]

    @staticmethod
    def latency_samples(lookahead: int) -> int:
        return lookahead + 1

    def extra_repr(self) -> str:
        return f"residual={self.residual}"
