"""Training data read from the packed arrays of the features stage: no decoding or resampling in the loop."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import pandas as pd
import torch

from hushkit.io import read_table


class TrainingSource(Protocol):
    """Where training batches come from: the batch of global step `step` (a source that is not seeded by the step
    draws from `rng`, the trainer's generator, whose state a resumed run restores). `part` picks examples of that
    batch (a process's share under torchrun); whatever the part, `rng` advances as for the whole batch."""

    def batch(self, step: int, batch_size: int, segment: int, rng: np.random.Generator, part: slice = slice(None)
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(noisy, clean), each (examples in part, segment) float32."""
        ...

    def prepare_batch(self, batch_size: int, segment: int, seed: int) -> torch.Tensor:
        """Noisy examples for a model's input statistics (hushkit.models.Denoiser.prepare), the same for a seed."""
        ...


class ValidationSource(Protocol):
    """Where validation batches come from: the same (inputs, targets) batches, in the same order, every time."""

    def fixed_batches(self, batch_size: int, segment: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(inputs, targets) numpy batches of at most `batch_size` examples, inputs `segment` samples long."""
        ...


@dataclass
class PackedSplit:
    """One split's utterances, concatenated into two aligned 1-D float32 arrays (memory-mapped)."""

    clean: np.ndarray
    noisy: np.ndarray
    index: pd.DataFrame  # columns: id, offset, length

    @classmethod
    def load(cls, directory: Path) -> "PackedSplit":
        directory = Path(directory)
        clean = np.load(directory / "clean.npy", mmap_mode="r")
        noisy = np.load(directory / "noisy.npy", mmap_mode="r")
        index = read_table(directory / "index.csv")
        if clean.shape != noisy.shape:
            raise ValueError(f"{directory}: clean {clean.shape} and noisy {noisy.shape} arrays differ")
        return cls(clean=clean, noisy=noisy, index=index)

    def utterance(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        offset, length = int(self.index.offset.iat[row]), int(self.index.length.iat[row])
        return self.clean[offset : offset + length], self.noisy[offset : offset + length]

    def crop(self, row: int, segment: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """A `segment`-long crop (random start with rng, else the start); short utterances are zero-padded."""
        clean, noisy = self.utterance(row)
        if len(clean) > segment:
            start = int(rng.integers(0, len(clean) - segment + 1)) if rng is not None else 0
            return np.array(clean[start : start + segment]), np.array(noisy[start : start + segment])
        pad = segment - len(clean)
        return np.pad(clean, (0, pad)), np.pad(noisy, (0, pad))

    def random_batch(self, batch_size: int, segment: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        rows = rng.integers(0, len(self.index), size=batch_size)
        pairs = [self.crop(int(r), segment, rng) for r in rows]
        return np.stack([p[1] for p in pairs]), np.stack([p[0] for p in pairs])  # noisy, clean

    def batch(self, step: int, batch_size: int, segment: int, rng: np.random.Generator, part: slice = slice(None)
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """A TrainingSource over these fixed pairs (`mixing: fixed`): random crops of random pairs, from `rng`
        (the whole batch is drawn, so every part leaves `rng` as the whole batch does)."""
        noisy, clean = self.random_batch(batch_size, segment, rng)
        return torch.from_numpy(noisy[part]), torch.from_numpy(clean[part])

    def prepare_batch(self, batch_size: int, segment: int, seed: int) -> torch.Tensor:
        return torch.from_numpy(self.random_batch(batch_size, segment, np.random.default_rng(seed))[0])

    def fixed_batches(self, batch_size: int, segment: int):
        """Deterministic validation batches: the first `segment` samples of every utterance."""
        for start in range(0, len(self.index), batch_size):
            rows = range(start, min(start + batch_size, len(self.index)))
            pairs = [self.crop(r, segment, None) for r in rows]
            yield np.stack([p[1] for p in pairs]), np.stack([p[0] for p in pairs])
