"""Audio in and out and the small helpers the stages share: reading with a clear error, writing byte-reproducibly
and atomically, resampling, levels, trimming."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from hushkit.errors import UserError
from hushkit.io import atomic_path

EPS = 1e-12
_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sf_command code (sndfile.h)


class AudioReadError(UserError, ValueError):
    """A file that is not usable audio; the message names the file and the reason."""


def read_audio(path: str | os.PathLike, *, always_2d: bool = False) -> tuple[np.ndarray, int]:
    """Read any format soundfile knows as float32 (frames[, channels]); raise AudioReadError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: empty file (0 bytes)")
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=always_2d)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioReadError(f"{path}: not readable as audio ({err})") from None
    if audio.shape[0] == 0:
        raise AudioReadError(f"{path}: contains no audio frames")
    return audio, int(sr)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> None:
    """Float WAV by default: mixtures stay exact (and a NaN stays visible to the data checks)."""
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    audio = np.asarray(audio)
    with atomic_path(path) as tmp:
        with sf.SoundFile(tmp, "w", sample_rate, 1 if audio.ndim == 1 else audio.shape[1], subtype, format=fmt) as fh:
            # libsndfile stamps the write time into a float WAV's PEAK chunk: off, so the same audio gives the same
            # bytes (the files are DVC outputs; a new hash on every rerun would rerun everything downstream).
            sf._snd.sf_command(fh._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
            fh.write(audio)


def to_mono(audio: np.ndarray) -> np.ndarray:
    return audio if audio.ndim == 1 else audio.mean(axis=1).astype(np.float32)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling (soxr); works on (frames,) and (frames, channels)."""
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)) + EPS))


def rms_db(audio: np.ndarray) -> float:
    return 20.0 * float(np.log10(rms(audio)))


def peak(audio: np.ndarray) -> float:
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def frame_energies_db(audio: np.ndarray, frame: int, hop: int) -> np.ndarray:
    if len(audio) < frame:
        audio = np.pad(audio, (0, frame - len(audio)))
    n = 1 + (len(audio) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    power = np.mean(np.square(audio[idx], dtype=np.float64), axis=1)
    return 10.0 * np.log10(power + EPS)


def trim_silence(audio: np.ndarray, sample_rate: int, top_db: float = 35.0) -> np.ndarray:
    """Cut leading/trailing frames quieter than `top_db` below the loudest frame."""
    frame, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
    energy = frame_energies_db(audio, frame, hop)
    active = np.flatnonzero(energy > energy.max() - top_db)
    if active.size == 0:
        return audio
    start = active[0] * hop
    end = min(len(audio), active[-1] * hop + frame)
    return audio[start:end]


def active_power(audio: np.ndarray, sample_rate: int, top_db: float = 35.0) -> float:
    """Mean power over active frames, so a pause in speech does not lower its level (used for SNR)."""
    frame, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
    energy = frame_energies_db(audio, frame, hop)
    active = energy > energy.max() - top_db
    return float(np.mean(10.0 ** (energy[active] / 10.0)))
