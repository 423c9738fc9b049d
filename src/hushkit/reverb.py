"""Room impulse responses: simulated shoebox rooms (image-source method), RT60 by Schroeder integration, and the
alignment every user of an RIR relies on (direct path at sample 0, unit direct-path peak, an early-reflection part).

A bank RIR is stored *aligned*: its direct-path peak is sample 0 and has amplitude 1, so convolving speech with it
keeps the speech's timing and direct level, and the early-reflection target (`early_part`) lines up with the
reverberant input sample for sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SPEED_OF_SOUND = 343.0


@dataclass(frozen=True)
class Room:
    """One simulated shoebox: dimensions (m), source and microphone positions (m), the RT60 it was built for."""

    dims: tuple[float, float, float]
    source: tuple[float, float, float]
    mic: tuple[float, float, float]
    rt60_target: float


def draw_room(rng: np.random.Generator, rt60: float, size: dict[str, list[float]], margin: float = 0.5) -> Room:
    """A random room of the given size ranges (`length`, `width`, `height`: [low, high] m) with source and microphone
    at least `margin` from every wall and at least 0.5 m apart."""
    dims = tuple(float(rng.uniform(*size[key])) for key in ("length", "width", "height"))
    low = np.full(3, margin)
    high = np.array(dims) - margin
    for _ in range(100):
        source, mic = rng.uniform(low, high), rng.uniform(low, high)
        if np.linalg.norm(source - mic) >= 0.5:
            break
    return Room(dims=dims, source=tuple(map(float, source)), mic=tuple(map(float, mic)), rt60_target=float(rt60))


def simulate(room: Room, sample_rate: int) -> np.ndarray:
    """The room's impulse response by pyroomacoustics' image-source method, wall absorption and reflection order
    from Sabine's formula for the target RT60."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(room.rt60_target, list(room.dims))
    shoebox = pra.ShoeBox(list(room.dims), fs=sample_rate, materials=pra.Material(absorption), max_order=max_order)
    shoebox.add_source(list(room.source))
    shoebox.add_microphone(list(room.mic))
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0], dtype=np.float64)


def schroeder_rt60(rir: np.ndarray, sample_rate: int, start_db: float = -5.0, decay_db: float = 20.0) -> float:
    """RT60 from the Schroeder backward-integrated energy decay curve: a least-squares line through the curve between
    `start_db` and `start_db - decay_db` (T20 by default), extrapolated to 60 dB of decay. NaN when the curve never
    falls that far (a truncated or non-decaying response)."""
    energy = np.square(np.asarray(rir, dtype=np.float64))
    decay = np.cumsum(energy[::-1])[::-1]
    if decay[0] <= 0:
        return float("nan")
    curve = 10.0 * np.log10(np.maximum(decay / decay[0], 1e-30))
    span = np.flatnonzero((curve <= start_db) & (curve >= start_db - decay_db))
    if span.size < 2 or curve[-1] > start_db - decay_db:
        return float("nan")
    times = span / sample_rate
    slope = np.polyfit(times, curve[span], 1)[0]  # dB per second, negative
    return float(-60.0 / slope) if slope < 0 else float("nan")


def align(rir: np.ndarray, sample_rate: int, max_seconds: float, fade_seconds: float = 0.05) -> np.ndarray:
    """Cut everything before the direct-path peak (the largest absolute sample), scale that peak to 1, keep at most
    `max_seconds`, and fade the last `fade_seconds` out so a truncated tail does not end in a step."""
    rir = np.asarray(rir, dtype=np.float64)
    peak = int(np.argmax(np.abs(rir)))
    aligned = rir[peak : peak + int(round(max_seconds * sample_rate))] / rir[peak]
    fade = min(int(round(fade_seconds * sample_rate)), len(aligned) // 2)
    if fade and len(aligned) == int(round(max_seconds * sample_rate)):
        aligned[-fade:] *= np.linspace(1.0, 0.0, fade)
    return aligned.astype(np.float32)


def early_part(rir: np.ndarray, sample_rate: int, early_ms: float) -> np.ndarray:
    """The first `early_ms` of an aligned RIR (direct path and early reflections), the rest zero: the target speech
    of dereverberation, which keeps the early reflections that help intelligibility."""
    early = np.array(rir, dtype=np.float32, copy=True)
    early[int(round(early_ms / 1000.0 * sample_rate)) :] = 0.0
    return early


def convolve(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """`audio` convolved with `rir`, cut to the length of `audio` (an aligned RIR keeps the timing)."""
    from scipy.signal import fftconvolve

    return fftconvolve(np.asarray(audio, dtype=np.float64), np.asarray(rir, dtype=np.float64))[: len(audio)].astype(
        np.float32)


@dataclass
class RirBank:
    """The rirs stage's output: aligned RIRs (rows of one zero-padded array) and their index (id, split, rt60...)."""

    rirs: np.ndarray  # (count, length) float32
    index: "pd.DataFrame"

    @classmethod
    def load(cls, directory) -> "RirBank":
        from pathlib import Path

        from hushkit.io import read_table

        directory = Path(directory)
        rirs = np.load(directory / "rirs.npy")
        index = read_table(directory / "index.csv")
        if len(index) != len(rirs):
            raise ValueError(f"{directory}: index.csv lists {len(index)} RIRs but rirs.npy holds {len(rirs)}")
        return cls(rirs=rirs, index=index)

    def ids(self, split: str) -> list[str]:
        return sorted(self.index.id[self.index.split == split])

    def rir(self, rir_id: str) -> np.ndarray:
        row = self.index.index[self.index.id == rir_id]
        if len(row) != 1:
            raise ValueError(f"RIR {rir_id!r} is not in the bank")
        return self.rirs[row[0], : int(self.index.length.iat[row[0]])]

    def split(self, split: str) -> np.ndarray:
        """Every RIR of `split` as rows of one (n, length) array (zero-padded)."""
        return self.rirs[(self.index.split == split).to_numpy()]
