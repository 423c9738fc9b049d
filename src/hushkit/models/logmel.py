"""The taggers' front end: a waveform batch (B, T) to log-mel power (B, frames, n_mels), inside the model.

Frames are `win_ms` long (a periodic Hann window) every `hop_ms`, centred on multiples of the hop with zero padding
(torch.stft's ``center=True, pad_mode="constant"``), so a signal of T samples has ``T // hop + 1`` frames and frame
k describes the audio around sample ``k * hop``. Each frame's spectrum is the DFT of `n_fft` points (the window
length rounded up to a power of two: the window zero-padded), computed as one strided conv1d with a windowed DFT
basis, as hushkit.models.stft does, so a tagger exports to plain ONNX Conv nodes for any length. The power is
pooled by triangular mel filters (the HTK mel scale, unnormalised: librosa's ``htk=True, norm=None``) and logged.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_FLOOR = 1e-8  # added to the mel power before the log: digital silence stays finite


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
                   ) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters, equally spaced on the HTK mel scale between f_min and f_max
    (default: Nyquist); each rises from its lower neighbour's centre to 1 at its own and falls to its upper
    neighbour's."""
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(f"mel filters need 0 <= f_min < f_max <= {sample_rate / 2} Hz, got {f_min}, {f_max}")
    if n_mels < 1:
        raise ValueError(f"n_mels must be >= 1, got {n_mels}")
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T


class LogMel(nn.Module):
    """Waveform (B, T) → natural-log mel power (B, frames, n_mels), frames = T // hop + 1 (see the module doc)."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0,
                 f_min: float = 0.0, f_max: float | None = None):
        super().__init__()
        self.win = int(round(win_ms * sample_rate / 1000.0))
        self.hop = int(round(hop_ms * sample_rate / 1000.0))
        if self.win < 2 or self.hop < 1:
            raise ValueError(f"win_ms={win_ms} and hop_ms={hop_ms} at {sample_rate} Hz leave a window of {self.win} "
                             f"and a hop of {self.hop} samples; need at least 2 and 1")
        self.n_fft = 1 << (self.win - 1).bit_length()
        self.n_mels = int(n_mels)
        n_bins = self.n_fft // 2 + 1
        n = np.arange(self.win)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.win)  # periodic Hann, as torch.hann_window
        phase = 2.0 * np.pi * np.outer(np.arange(n_bins), n) / self.n_fft
        basis = np.concatenate([np.cos(phase) * window, -np.sin(phase) * window])  # (2 * n_bins, win)
        self.register_buffer("basis", torch.from_numpy(basis[:, None, :].astype(np.float32)), persistent=False)
        mel = mel_filterbank(sample_rate, self.n_fft, self.n_mels, f_min, f_max)
        self.register_buffer("mel", torch.from_numpy(mel.astype(np.float32)), persistent=False)

    def frames(self, samples: int) -> int:
        return samples // self.hop + 1

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"expected a (batch, samples) waveform, got shape {tuple(waveform.shape)}")
        half = self.win // 2
        padded = F.pad(waveform[:, None], (half, self.win - half))
        spectrum = F.conv1d(padded, self.basis, stride=self.hop)  # (B, 2 * n_bins, T // hop + 1)
        real, imag = spectrum.chunk(2, dim=1)
        power = real * real + imag * imag  # (B, n_bins, frames)
        return torch.log(torch.matmul(power.transpose(1, 2), self.mel) + LOG_FLOOR)

    def extra_repr(self) -> str:
        return f"win={self.win}, hop={self.hop}, n_fft={self.n_fft}, n_mels={self.n_mels}"

