"""The windowed Fourier filterbank that the learned-filterbank models (Conv-TasNet, the waveform autoencoder) start
from: a strided conv (analysis) and a transposed conv (synthesis) initialised as an STFT and its inverse.

A learned filterbank starting from random filters is not frequency-selective, so in a short training run the
network behind it cannot yet tell speech bands from noise bands; starting from the Fourier basis it can from the
first step, and training adapts the filters from there (measured in ConvTasNet's and WaveAutoencoder's docs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
    if L < 2 or L % 2:
        raise ValueError(f"filter length must be an even integer >= 2, got {L}")
    window = torch.hann_window(L, periodic=True, dtype=torch.float64).sqrt()
    return (fourier_basis(L) * window).float()


class FourierFilterbank(nn.Module):
    """A learned analysis/synthesis pair of ``length`` filters at hop ``length / 2`` that starts as the windowed
    Fourier basis: ``synthesise(analyse(x), T) == x`` at initialisation.

    Framing as ``ConvSTFT``: the signal is zero-padded by ``length - hop`` on the left and to the end of the last
    frame on the right, so every sample lies in exactly two frames; ``analyse(x, multiple=m)`` appends frames
    until their count is a multiple of ``m`` (for a network that strides over frames).
    """

    def __init__(self, length: int):
        super().__init__()
        filters = windowed_fourier_filters(length)
        self.length, self.hop = int(length), int(length) // 2
        self.analysis = nn.Conv1d(1, self.length, self.length, stride=self.hop, bias=False)
        self.synthesis = nn.ConvTranspose1d(self.length, 1, self.length, stride=self.hop, bias=False)
        with torch.no_grad():
            self.analysis.weight[:, 0] = filters
            self.synthesis.weight[:, 0] = filters

    def analyse(self, x: Tensor, multiple: int = 1) -> Tensor:
        """(B, 1, T) → (B, length, frames) coefficients, ``frames`` a multiple of `multiple`."""
        samples = x.shape[-1]
        frames = (samples - 1) // self.hop + 2
        extra = (multiple - frames % multiple) % multiple
        right = self.length - 1 - (samples - 1) % self.hop + extra * self.hop
        return self.analysis(F.pad(x, (self.length - self.hop, right)))

    def synthesise(self, coefficients: Tensor, samples: int) -> Tensor:
        """(B, length, frames) → (B, samples): overlap-add, cropped to the analysed signal."""
        left = self.length - self.hop
        return self.synthesis(coefficients)[:, 0, left : left + samples]

    def latency_samples(self, lookahead_frames: int) -> int:
        """Algorithmic latency of a model that looks `lookahead_frames` frames ahead on these coefficients: the
        latest frame covering a sample ends ``length - 1`` samples later (+ 1 for the current sample), and each
        frame of look-ahead adds a hop."""
        return self.length + lookahead_frames * self.hop
