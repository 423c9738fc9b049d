"""Losses that work on waveforms, combined by weights from params (train.loss)."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

EPS = 1e-8


def si_sdr_loss(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Negative scale-invariant SDR in dB, averaged over the batch."""
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    clean = clean - clean.mean(dim=-1, keepdim=True)
    scale = (estimate * clean).sum(-1, keepdim=True) / (clean.pow(2).sum(-1, keepdim=True) + EPS)
    target = scale * clean
    ratio = target.pow(2).sum(-1) / ((estimate - target).pow(2).sum(-1) + EPS)
    return -10.0 * torch.log10(ratio + EPS).mean()


def _stft_pair(estimate: torch.Tensor, clean: torch.Tensor, n_fft: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary STFT parts of estimate and clean stacked on the batch axis (estimate first), from one
    STFT call and in real arithmetic: complex autograd costs about twice as much on CPU."""
    window = torch.hann_window(n_fft, device=estimate.device, dtype=estimate.dtype)
    spec = torch.view_as_real(torch.stft(torch.cat([estimate, clean]), n_fft, hop, window=window,
                                         return_complex=True))
    return spec[..., 0], spec[..., 1]


def _stft_mags(estimate: torch.Tensor, clean: torch.Tensor, n_fft: int, hop: int):
    """Magnitudes of both signals (floored at EPS)."""
    real, imag = _stft_pair(estimate, clean, n_fft, hop)
    mag = (real * real + imag * imag).clamp_min(EPS * EPS).sqrt()
    return mag[: estimate.shape[0]], mag[estimate.shape[0] :]


def multi_resolution_stft_loss(
    estimate: torch.Tensor, clean: torch.Tensor, resolutions=((512, 128), (256, 64), (1024, 256))
) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1 at several resolutions (Yamamoto et al. 2020)."""
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        est, ref = _stft_mags(estimate, clean, n_fft, hop)
        convergence = torch.linalg.norm(ref - est, dim=(-2, -1)) / torch.linalg.norm(ref, dim=(-2, -1)).clamp_min(EPS)
        log_mag = F.l1_loss(est.log(), ref.log())
        total = total + convergence.mean() + log_mag
    return total / len(resolutions)


COMPRESSION = 0.3  # the field's power-law exponent: |X|^0.3


class CompressedTerms(NamedTuple):
    magnitude: torch.Tensor  # MSE of |X|^c
    complex: torch.Tensor  # MSE of the compressed complex spectrum (real and imaginary summed)
    undershoot: torch.Tensor  # MSE of max(|S|^c - |S_hat|^c, 0): the speech the estimate removed


def compressed_spectra(estimate: torch.Tensor, clean: torch.Tensor, n_fft: int = 512, hop: int = 256,
                       power: float = COMPRESSION) -> CompressedTerms:
    """The power-law compressed spectral errors (Braun & Tashev 2021; the field's small causal models train on
    these): |X|^c, and the complex spectrum with its magnitude compressed and its phase kept. Compression keeps
    quiet speech bins in play without the log's blow-up on digital silence.

    ``undershoot`` counts only the bins where the estimate is weaker than the clean speech: weighted beside the
    magnitude term it makes the loss asymmetric (Wilson et al. 2018, "Exploring tradeoffs in models for low-latency
    speech enhancement"), so removing speech costs more than leaving noise, the trade a model makes on noise unlike
    any it trained on."""
    real, imag = _stft_pair(estimate, clean, n_fft, hop)
    power_spec = real * real + imag * imag + EPS
    compressed = power_spec.pow(power / 2)  # |X|^c
    scale = power_spec.pow((power - 1) / 2)  # |X|^(c-1): compressed magnitude with the phase kept
    n = estimate.shape[0]
    magnitude = F.mse_loss(compressed[:n], compressed[n:])
    complex_term = F.mse_loss((scale * real)[:n], (scale * real)[n:]) + F.mse_loss((scale * imag)[:n],
                                                                                   (scale * imag)[n:])
    undershoot = (compressed[n:] - compressed[:n]).clamp_min(0.0).pow(2).mean()
    return CompressedTerms(magnitude, complex_term, undershoot)


def compressed_magnitude_loss(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return compressed_spectra(estimate, clean).magnitude


def compressed_complex_loss(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return compressed_spectra(estimate, clean).complex


def compressed_undershoot_loss(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return compressed_spectra(estimate, clean).undershoot


def waveform_l1(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(estimate, clean)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "spectral": multi_resolution_stft_loss,
    "compressed_magnitude": compressed_magnitude_loss,
    "compressed_complex": compressed_complex_loss,
    "compressed_undershoot": compressed_undershoot_loss,
    "waveform_l1": waveform_l1,
    "si_sdr": si_sdr_loss,
}
_COMPRESSED = CompressedTerms._fields  # one STFT serves every weighted compressed term


def combined_loss(weights: dict[str, float]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The weighted sum of the named terms (train.loss). The field's recipe for small causal models (GTCRN):
    30 x compressed complex MSE + 70 x compressed magnitude MSE + SI-SNR (in log10 units, i.e. dB / 10); the
    same ratios at 1/100 of the scale are {compressed_complex: 0.3, compressed_magnitude: 0.7, si_sdr: 0.001}
    (si_sdr is in dB; the overall scale only changes the gradient norm that grad_clip sees)."""
    unknown = set(weights) - set(LOSSES)
    if unknown:
        raise ValueError(f"train.loss: unknown loss term(s) {sorted(unknown)}; known: {sorted(LOSSES)}")
    active = {name: float(w) for name, w in weights.items() if float(w) != 0.0}
    if not active:
        raise ValueError("train.loss: every weight is zero; give at least one loss term a weight")
    compressed_w = [active.pop(f"compressed_{field}", 0.0) for field in _COMPRESSED]

    def loss(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        total = sum(w * LOSSES[name](estimate, clean) for name, w in active.items())
        if any(compressed_w):
            for w, term in zip(compressed_w, compressed_spectra(estimate, clean)):
                if w:
                    total = total + w * term
        return total

    return loss
