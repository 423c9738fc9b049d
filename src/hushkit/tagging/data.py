"""Rendered tagging clips as the Trainer's data (hushkit.training.loop): a TrainingSource for training and the
validation source, whose batches are (waveforms (B, segment), multi-hot targets (B, classes)); a tagger's clip
scores over many clips; and the hash that says which clips a tagger was scored on."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from hushkit.io import read_table, sha256_file
from hushkit.models import load_checkpoint

SPLIT_FILES = ("clips.csv", "waveforms.npy", "targets.npy")  # one split of the tag-features stage's clips


@dataclass
class TaggingSplit:
    """One split's clips: equal-length waveforms, their multi-hot targets and subsets (`curated` or `noisy`)."""

    waveforms: np.ndarray  # (clips, samples) float32
    targets: np.ndarray  # (clips, classes) float32, 0 or 1
    subsets: np.ndarray  # (clips,) str

    def __post_init__(self) -> None:
        self.waveforms = np.asarray(self.waveforms, dtype=np.float32)  # a float32 memory map stays one
        self.targets = np.asarray(self.targets, dtype=np.float32)
        self.subsets = np.asarray(self.subsets, dtype=str)
        if self.waveforms.ndim != 2 or self.targets.ndim != 2:
            raise ValueError(f"waveforms {self.waveforms.shape} and targets {self.targets.shape} must be matrices")
        if not len(self.waveforms) == len(self.targets) == len(self.subsets):
            raise ValueError(f"{len(self.waveforms)} waveforms, {len(self.targets)} targets and {len(self.subsets)} "
                             "subsets: one each per clip")
        if not len(self.waveforms):
            raise ValueError("a tagging split needs at least one clip")

    @classmethod
    def load(cls, directory: Path) -> "TaggingSplit":
        """A split as the tag-features stage writes it: waveforms.npy (memory-mapped), targets.npy, clips.csv."""
        directory = Path(directory)
        clips = read_table(directory / "clips.csv")
        return cls(np.load(directory / "waveforms.npy", mmap_mode="r"), np.load(directory / "targets.npy"),
                   clips.subset.to_numpy())

    def __len__(self) -> int:
        return len(self.waveforms)

    def subset(self, name: str) -> "TaggingSplit":
        keep = self.subsets == name
        return TaggingSplit(self.waveforms[keep], self.targets[keep], self.subsets[keep])

    def _crops(self, rows: np.ndarray, segment: int, starts: np.ndarray | None) -> np.ndarray:
        """(len(rows), segment) crops: from `starts` when the clips are longer, else whole clips zero-padded."""
        samples = self.waveforms.shape[1]
        if segment >= samples:
            return np.pad(self.waveforms[rows], ((0, 0), (0, segment - samples)))
        starts = np.zeros(len(rows), dtype=np.int64) if starts is None else starts
        return np.stack([self.waveforms[r, s : s + segment] for r, s in zip(rows, starts)])

    def random_batch(self, batch_size: int, segment: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random clips (random crops of them when `segment` is shorter) and their targets, drawn from `rng`."""
        rows = rng.integers(0, len(self), size=batch_size)
        starts = rng.integers(0, max(self.waveforms.shape[1] - segment, 0) + 1, size=batch_size)
        return self._crops(rows, segment, starts), self.targets[rows]

    def batch(self, step: int, batch_size: int, segment: int, rng: np.random.Generator, part: slice = slice(None)
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The TrainingSource interface: the whole batch is drawn, so every part leaves `rng` as the whole does."""
        waveforms, targets = self.random_batch(batch_size, segment, rng)
        return torch.from_numpy(waveforms[part]), torch.from_numpy(np.ascontiguousarray(targets[part]))

    def prepare_batch(self, batch_size: int, segment: int, seed: int) -> torch.Tensor:
        return torch.from_numpy(self.random_batch(batch_size, segment, np.random.default_rng(seed))[0])

    def fixed_batches(self, batch_size: int, segment: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Deterministic validation batches: the first `segment` samples of every clip, with its targets."""
        for start in range(0, len(self), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self)))
            yield self._crops(rows, segment, None), self.targets[rows]


@torch.no_grad()
def clip_scores(model: torch.nn.Module, waveforms: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """(clips, classes) presence probabilities: the sigmoid of a tagger's clip logits, in eval mode, on the model's
    device."""
    model.eval()
    device = next(model.parameters()).device
    # np.array copies: a read-only memory map's slice would make a read-only tensor
    scores = [torch.sigmoid(model(torch.from_numpy(np.array(waveforms[i : i + batch_size], dtype=np.float32))
                                  .to(device))).cpu() for i in range(0, len(waveforms), batch_size)]
    return torch.cat(scores).numpy() if scores else np.zeros((0, 0), dtype=np.float32)


def split_sha256(features: Path, split: str = "test") -> str:
    """A hash of one split of the tag-features stage's output (`features`) as a tagger sees it: the label set
    (labels.json) and the split's clip table, audio and targets. Taggers scored on splits with the same hash were
    scored on the same clips (the registry's test-set tag, hushkit.registry.MANIFEST_TAG)."""
    features = Path(features)
    digest = hashlib.sha256()
    for path in (features / "labels.json", *(features / split / name for name in SPLIT_FILES)):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file; the tag-features stage writes it")
        digest.update(f"{path.relative_to(features).as_posix()} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def load_tagger_for_clips(model: Path, arch: str, features: Path):
    """(tagger, checkpoint meta, labels) of the `arch` checkpoint `model`, refused in one line naming the file when it
    holds another model or was trained on other labels than tag-features' (`features`/labels.json)."""
    tagger, meta = load_checkpoint(model, kind="tagger")
    if meta["model"] != arch:
        raise ValueError(f"{model}: checkpoint holds {meta['model']!r}, not {arch!r}")
    labels = json.loads((Path(features) / "labels.json").read_text())["labels"]
    if tagger.labels != labels:
        raise ValueError(f"{model}: the tagger's labels {tagger.labels} are not the clips' {labels}; rerun "
                         f"tag-train@{arch}")
    return tagger, meta, labels
