"""Enhancing a user's file: any rate and channel count in, the same rate and channels out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from hushkit.audio import AudioReadError, read_audio, resample
from hushkit.inference import Enhancer
from hushkit.io import write_audio


def enhance_channels(audio: np.ndarray, sample_rate: int, enhancer: Enhancer) -> np.ndarray:
    """(frames, channels) at any rate → each channel enhanced at the model's rate, back at the input's rate."""
    out = np.empty_like(audio)
    for ch in range(audio.shape[1]):
        signal = resample(audio[:, ch], sample_rate, enhancer.sample_rate)
        restored = resample(enhancer(signal), enhancer.sample_rate, sample_rate)
        # Resampling there and back can be a sample off: keep the input's length exactly.
        restored = np.pad(restored, (0, max(0, len(audio) - len(restored))))[: len(audio)]
        out[:, ch] = restored
    return np.clip(out, -1.0, 1.0)


def enhance_file(input_path: Path, output_path: Path, enhancer: Enhancer) -> float:
    """Returns the seconds of audio processed. The output's subtype follows the input where the format allows."""
    input_path, output_path = Path(input_path), Path(output_path)
    audio, rate = read_audio(input_path, always_2d=True)
    if not np.all(np.isfinite(audio)):
        raise AudioReadError(f"{input_path}: contains NaN or infinite samples")
    enhanced = enhance_channels(audio, rate, enhancer)
    info = sf.info(str(input_path))
    out_format = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(output_path.suffix.lower())
    if out_format is None:
        raise ValueError(f"{output_path}: unsupported output extension (use .wav, .flac or .ogg)")
    subtype = info.subtype if sf.check_format(out_format, info.subtype) else sf.default_subtype(out_format)
    write_audio(output_path, enhanced, rate, subtype=subtype)
    return len(audio) / rate
