"""Running a 48 kHz frame-by-frame runtime on audio at any rate: resample, feed whole frames (zero-padded at the
end), drop the runtime's output delay, resample back to the input's length."""
from __future__ import annotations

from typing import Callable

import numpy as np

from hushkit.audio import resample

RUNTIME_RATE = 48000


def run_framed(audio: np.ndarray, sample_rate: int, frame: int, delay: int,
               process: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`process` maps one float32 frame of `frame` samples at 48 kHz to the same; its output lags its input by `delay`
    samples, which are fed as trailing zeros and cut from the front so output sample i aligns with input sample i."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"baselines take mono audio, got shape {audio.shape}")
    if audio.size == 0:
        return audio.copy()
    x = resample(audio, sample_rate, RUNTIME_RATE).astype(np.float32)
    total = -(-(len(x) + delay) // frame) * frame  # ceil to whole frames, delay included
    padded = np.zeros(total, dtype=np.float32)
    padded[: len(x)] = x
    out = np.empty_like(padded)
    for start in range(0, total, frame):
        out[start : start + frame] = process(padded[start : start + frame])
    y = resample(out[delay : delay + len(x)], RUNTIME_RATE, sample_rate).astype(np.float32)
    return _fit(y, len(audio))


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Exactly `length` samples (resampling can leave one more or less)."""
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))
