"""A small corpus on disk, shaped like the download stage's, with a mix-stage-like `pools.csv` table of splits:
three speakers (one per split) and three noise categories, `siren` held out of every split (the unseen-noise
condition's)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hushkit.audio import write_audio

RATE = 16000


def _speech(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A voiced-sounding tone burst with silent ends (which the clip builder trims)."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(100, 220)
    voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    silence = np.zeros(int(0.2 * RATE))
    return (0.1 * np.concatenate([silence, voiced, silence])).astype(np.float32)


def _noise(category: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    if category == "hum":
        audio = np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(n)
    elif category == "siren":
        audio = np.sin(2 * np.pi * (800 + 300 * np.sin(2 * np.pi * 0.5 * t)) * t)
    else:
        audio = rng.standard_normal(n)
    return (0.03 * audio / np.std(audio)).astype(np.float32)


def build_corpus(root: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s, split in enumerate(("train", "val", "test")):
        for u in range(2):
            path = f"speech/spk{s}/spk{s}_{u}.wav"
            write_audio(root / path, _speech(rng, rng.uniform(0.6, 1.4)), RATE)
            rows.append({"kind": "speech", "path": path, "split": split, "speaker": f"spk{s}", "category": ""})
    for category in ("white", "hum", "siren"):
        for i, split in enumerate(("train", "train", "val", "test")):
            path = f"noise/{category}/{category}_{i}.wav"
            write_audio(root / path, _noise(category, rng, 1.5), RATE)
            rows.append({"kind": "noise", "path": path, "split": "unseen" if category == "siren" else split,
                         "speaker": "", "category": category})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("tagging-corpus")
    return root, build_corpus(root)
