"""Mixing clean speech with noise at a controlled SNR: the pure functions behind the mix stage."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hushkit.audio import active_power, rms_db

PEAK_LIMIT = 0.99
# The test split's conditions (mix.conditions): noise categories trained on, categories never heard, reverberation.
CONDITIONS = ("matched", "unseen_noise", "reverberant")


@dataclass
class Mixture:
    clean: np.ndarray
    noisy: np.ndarray
    realized_snr_db: float
    level_dbfs: float


def noise_segment(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random `length`-sample stretch of `noise`, looped when the clip is shorter than the speech."""
    if len(noise) < length:
        noise = np.tile(noise, int(np.ceil(length / len(noise))) + 1)
    start = int(rng.integers(0, len(noise) - length + 1))
    return noise[start : start + length]


def snr_db(clean: np.ndarray, noise: np.ndarray, sample_rate: int) -> float:
    """SNR over the active speech frames, so pauses do not lower the speech level (as SNR is usually meant)."""
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    return 10.0 * float(np.log10(active_power(clean, sample_rate) / max(noise_power, 1e-20)))


def snr_level(snr: float, step: float = 5.0) -> float:
    """A measured SNR to the nearest `step` dB: the level recorded pairs are grouped under beside the mixtures'
    fixed test levels (recorded SNRs are whatever the recording had)."""
    return float(step * round(snr / step))


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, target_snr_db: float, level_dbfs: float, sample_rate: int,
    reference: np.ndarray | None = None,
) -> Mixture:
    """clean + noise scaled to `target_snr_db`; both then scaled to `level_dbfs` RMS and, if needed, down to a
    peak of 0.99, so nothing clips and the SNR is untouched by the gain.

    `reference`: the target the pair is scored against when it is not `clean` itself (reverberant speech's
    early-reflection part): it gets the same gains and is returned as the Mixture's `clean`; the SNR is still that of
    `clean` (the speech in the mixture) to the noise."""
    if len(noise) != len(clean):
        raise ValueError(f"noise ({len(noise)}) and clean ({len(clean)}) lengths differ")
    clean = clean.astype(np.float64)
    noise = noise.astype(np.float64)
    reference = clean if reference is None else np.asarray(reference, dtype=np.float64)
    current = snr_db(clean, noise, sample_rate)
    noise = noise * 10.0 ** ((current - target_snr_db) / 20.0)
    noisy = clean + noise
    gain = 10.0 ** ((level_dbfs - rms_db(noisy)) / 20.0)
    peak = max(np.max(np.abs(noisy)), np.max(np.abs(clean)), np.max(np.abs(reference))) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    speech32, noisy32 = (clean * gain).astype(np.float32), (noisy * gain).astype(np.float32)
    realized = snr_db(speech32, noisy32 - speech32, sample_rate)
    return Mixture(clean=(reference * gain).astype(np.float32), noisy=noisy32, realized_snr_db=realized,
                   level_dbfs=rms_db(noisy32))


def at_level(audio: np.ndarray, level_dbfs: float) -> np.ndarray:
    """`audio` scaled to `level_dbfs` RMS, or lower where that would put its peak above 0.99 (float32): the level
    rule of `mix_at_snr`, for a signal that is not a mixture (a noise clip alone)."""
    audio = np.asarray(audio, dtype=np.float64)
    gain = 10.0 ** ((level_dbfs - rms_db(audio)) / 20.0)
    peak = float(np.max(np.abs(audio))) * gain if audio.size else 0.0
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (audio * gain).astype(np.float32)
