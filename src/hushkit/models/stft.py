"""STFT / inverse STFT as fixed-basis convolutions, so a whole waveform→waveform model exports to one ONNX graph.

ONNX has an STFT op but no inverse, and `torch.stft` / `torch.istft` do not export with dynamic lengths; a conv1d
with a windowed DFT basis (and a conv_transpose1d with the windowed inverse basis for overlap-add) exports as
plain Conv / ConvTranspose nodes and runs everywhere.

Padding scheme (shared by both transforms, so they are exact inverses):

* the signal is zero-padded on the left by ``n_fft - hop`` and on the right up to the end of the last frame that
  starts at or before the last sample, so every sample of ``x`` is covered by exactly ``n_fft // hop`` frames
  (the steady-state overlap, nowhere a partial one);
* the frames are ``floor((T - 1) / hop) + n_fft // hop`` (T >= 1), so any length works, including T < n_fft;
* the inverse overlap-adds, divides by the overlap-added window product (guarded against zero) and crops back
  to ``T``: ``ConvISTFT()(*ConvSTFT()(x), length=T) == x`` up to float rounding.

Frame ``k`` covers input samples ``[k*hop - (n_fft - hop), k*hop + hop)``: the frames are causal in the sense that
frame ``k`` ends with the hop-block ``k``; an output sample depends on at most ``n_fft - 1`` future input samples.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WINDOWS = ("sqrt_hann", "hann")


def _window(kind: str, n_fft: int) -> Tensor:
    hann = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    if kind == "sqrt_hann":
        return hann.sqrt()
    if kind == "hann":
        return hann
    raise ValueError(f"unknown window {kind!r}; expected one of {WINDOWS}")


def _check(n_fft: int, hop: int) -> None:
    if n_fft < 2 or n_fft % 2:
        raise ValueError(f"n_fft must be an even integer >= 2, got {n_fft}")
    if hop < 1 or n_fft % hop:
        raise ValueError(f"hop must divide n_fft (full-overlap padding relies on it), got n_fft={n_fft}, hop={hop}")


def frame_padding(length: Tensor | int, n_fft: int, hop: int) -> tuple[int, Tensor | int]:
    """(left, right) zero padding of a length-`length` signal; see the module docstring."""
    left = n_fft - hop
    right = n_fft - 1 - (length - 1) % hop
    return left, right


def num_frames(length: int, n_fft: int, hop: int) -> int:
    return (length - 1) // hop + n_fft // hop


class ConvSTFT(nn.Module):
    """Waveform (B, T) → (real, imag), each (B, n_fft // 2 + 1, frames), via one strided conv1d."""

    def __init__(self, n_fft: int = 256, hop: int = 128, window: str = "sqrt_hann"):
        super().__init__()
        _check(n_fft, hop)
        self.n_fft, self.hop, self.window = n_fft, hop, window
        self.n_bins = n_fft // 2 + 1
        win = _window(window, n_fft)
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(self.n_bins, dtype=torch.float64)[:, None]
        angle = 2.0 * math.pi * k * n / n_fft
        basis = torch.cat([torch.cos(angle) * win, -torch.sin(angle) * win])  # (2F, n_fft)
        self.register_buffer("basis", basis[:, None, :].float(), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 2:
            raise ValueError(f"expected a (batch, samples) waveform, got shape {tuple(x.shape)}")
        left, right = frame_padding(x.shape[-1], self.n_fft, self.hop)
        spec = F.conv1d(F.pad(x[:, None, :], (left, right)), self.basis, stride=self.hop)
        return spec[:, : self.n_bins], spec[:, self.n_bins :]


class ConvISTFT(nn.Module):
    """(real, imag) each (B, n_fft // 2 + 1, frames) → waveform (B, length): inverse of `ConvSTFT` with the same
    settings, by conv_transpose1d overlap-add normalised by the overlap-added window product."""

    def __init__(self, n_fft: int = 256, hop: int = 128, window: str = "sqrt_hann", eps: float = 1e-8):
        super().__init__()
        _check(n_fft, hop)
        self.n_fft, self.hop, self.window, self.eps = n_fft, hop, window, eps
        self.n_bins = n_fft // 2 + 1
        # Synthesis window = analysis window; for sqrt-Hann their product is the Hann window.
        win = _window(window, n_fft)
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(self.n_bins, dtype=torch.float64)[:, None]
        angle = 2.0 * math.pi * k * n / n_fft
        # One-sided inverse DFT: DC and Nyquist once, the other bins twice (their conjugate mirrors).
        scale = torch.full((self.n_bins, 1), 2.0, dtype=torch.float64)
        scale[0] = scale[-1] = 1.0
        scale /= n_fft
        basis = torch.cat([scale * torch.cos(angle) * win, -scale * torch.sin(angle) * win])  # (2F, n_fft)
        self.register_buffer("basis", basis[:, None, :].float(), persistent=False)
        self.register_buffer("window_product", (win * win)[None, None, :].float(), persistent=False)

    def forward(self, real: Tensor, imag: Tensor, length: Tensor | int) -> Tensor:
        spec = torch.cat([real, imag], dim=1)
        frames = F.conv_transpose1d(spec, self.basis, stride=self.hop)  # (B, 1, padded)
        # Overlap-added window product; one batch row is enough (it depends on the frame count only).
        ones = torch.ones_like(real[:1, :1, :])
        norm = F.conv_transpose1d(ones, self.window_product, stride=self.hop)
        wave = frames / norm.clamp_min(self.eps)
        left = self.n_fft - self.hop
        return wave[:, 0, left : left + length]
