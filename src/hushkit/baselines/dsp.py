"""A classical single-channel denoiser: Wiener gain with the decision-directed a-priori SNR (Ephraim & Malah 1984)
over a noise power spectrum estimated from the quietest frames of each bin (a minimum-statistics shortcut that suits
stationary noise), gain floored so residual noise stays natural rather than "musical". 32 ms windows, 75 % overlap."""
from __future__ import annotations

import numpy as np
from scipy.signal import istft, stft

from hushkit.baselines import Enhance, register_baseline

WINDOW_SECONDS = 0.032
NOISE_PERCENTILE = 10.0  # per bin: the power below which 10 % of frames fall ...
NOISE_BIAS = 2.0  # ... is a low estimate of the noise mean: scaled up by this (a percentile of an exponential)
SMOOTHING = 0.98  # decision-directed weight of the previous frame's clean estimate
GAIN_FLOOR_DB = -15.0


def wiener_denoise(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    n_fft = int(2 ** np.ceil(np.log2(WINDOW_SECONDS * sample_rate)))
    if audio.size < n_fft:
        return audio.copy()  # too short to estimate a noise spectrum from
    hop = n_fft // 4
    _, _, spec = stft(audio, fs=sample_rate, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary="even")
    power = np.abs(spec) ** 2  # (bins, frames)
    noise = np.maximum(np.percentile(power, NOISE_PERCENTILE, axis=1) * NOISE_BIAS, 1e-12)[:, None]
    posterior = power / noise
    floor = 10 ** (GAIN_FLOOR_DB / 20)
    gains = np.empty_like(power)
    previous = np.ones(power.shape[0])  # |S|^2 / noise of the previous frame's estimate
    for t in range(power.shape[1]):
        prior = SMOOTHING * previous + (1 - SMOOTHING) * np.maximum(posterior[:, t] - 1, 0)
        gain = np.maximum(prior / (1 + prior), floor)
        gains[:, t] = gain
        previous = gain**2 * posterior[:, t]
    _, out = istft(spec * gains, fs=sample_rate, nperseg=n_fft, noverlap=n_fft - hop, window="hann",
                   boundary=True)
    out = out[: audio.size]
    return np.pad(out, (0, audio.size - out.size)).astype(np.float32)


@register_baseline("dsp")
def dsp(sample_rate: int) -> Enhance:
    return lambda audio: wiener_denoise(audio, sample_rate)
