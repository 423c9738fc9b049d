"""The tagging clips: two subsets built from the corpus with the denoiser's own splits (the mix stage's
`pools.csv`: every speech and noise file with its split), so no test clip shares a speaker or a noise instance
with training.

* **curated**: one noise category alone, a random stretch of one of the split's clips of that category, at a
  random level (single-label, like Freesound Audio Tagging 2019's curated set);
* **noisy**: speech (an utterance of one of the split's speakers, trimmed of its silent ends, at a random place in
  the clip) plus 1 to `max_noises` different noise categories, each at its own random SNR to the speech
  (multi-label: `speech` and every category mixed in).

Unnamed noise (`uncategorized`) makes clips like a category but is no label (hushkit.tagging.categories): its
curated clips carry no label, and noisy clips with it only the other categories and speech. With
`ClipParams.held_out` `learn`, the held-out categories' noise (pools.csv's `unseen` split) is first split among
the tagger's train, val and test by instance (`tagger_splits`).

`plan_clips` draws everything about every clip from `ClipParams.seed` (a table, one row per clip, with the seed of
its own random stream); `render_clip` makes one clip's audio from its row alone, so the same params give the same
clips in any order. The mixing is hushkit.mixing's: noise stretches by `noise_segment`, SNRs measured over the
speech's active frames by `snr_db`, the mixture's level and peak limit by `mix_at_snr` (a noise alone: `at_level`).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from hushkit.audio import read_audio, trim_silence
from hushkit.config.data import UNCATEGORIZED
from hushkit.config.tagging import HELD_OUT_LEARN, ClipParams
from hushkit.mixing import at_level, mix_at_snr, noise_segment, snr_db
from hushkit.tagging.categories import tagger_splits
from hushkit.tagging.labels import SEPARATOR, SPEECH, LabelSet

SPLITS = ("train", "val", "test")
SUBSETS = ("curated", "noisy")
COLUMNS = ["id", "split", "subset", "labels", "speech_path", "noise_paths", "snr_db", "level_dbfs", "seed"]


def _files(pools: pd.DataFrame, kind: str, split: str) -> pd.DataFrame:
    return pools[(pools.kind == kind) & (pools.split == split)].sort_values("path")


def plan_clips(pools: pd.DataFrame, labels: LabelSet, params: ClipParams) -> pd.DataFrame:
    """One row per clip (columns `COLUMNS`; `noise_paths` and `snr_db` hold one entry per noise, `;`-joined, and
    `labels` the clip's labels, `;`-joined in label-set order). ValueError when a split lacks what its clips need."""
    pools = pools.fillna({"category": "", "speaker": ""})
    bad = [path for path in pools.path if SEPARATOR in str(path)]
    if bad:
        raise ValueError(f"corpus paths must not contain {SEPARATOR!r} (the clip table joins paths with it): {bad[0]}")
    if params.held_out == HELD_OUT_LEARN:
        pools = tagger_splits(pools, params.seed)
    # The label categories in label-set order, then unnamed noise (no label of its own, so last: a corpus without
    # it draws exactly as it would without this rule).
    kinds = list(dict.fromkeys([*labels.noise_categories, UNCATEGORIZED]))
    rng = np.random.default_rng(params.seed)
    rows = []
    for split in SPLITS:
        noise = _files(pools, "noise", split)
        by_category = {c: noise[noise.category == c].path.to_numpy() for c in kinds}
        categories = [c for c in kinds if len(by_category[c])]
        speech = _files(pools, "speech", split).path.to_numpy()
        curated = getattr(params.curated_per_category, split)
        noisy = getattr(params.noisy, split)
        if (curated or noisy) and not categories:
            raise ValueError(f"tagging clips: the {split} split has no noise file of a label category or "
                             f"{UNCATEGORIZED!r}")
        if noisy and not len(speech):
            raise ValueError(f"tagging clips: {noisy} noisy {split} clips asked for, but the {split} split has no "
                             "speech")

        def row(subset: str, clip_labels: list[str], speech_path: str, noise_paths: list[str],
                snrs: list[float]) -> dict:
            # join keeps only the label set's names: unnamed noise adds no label
            return {"id": f"{split}-{subset}-{len(rows):05d}", "split": split, "subset": subset,
                    "labels": labels.join(clip_labels), "speech_path": speech_path,
                    "noise_paths": SEPARATOR.join(noise_paths), "snr_db": SEPARATOR.join(repr(s) for s in snrs),
                    "level_dbfs": float(rng.uniform(params.level_dbfs.low, params.level_dbfs.high)),
                    "seed": int(rng.integers(0, 2**31 - 1))}

        for category in categories:
            for _ in range(curated):
                rows.append(row("curated", [category], "", [str(rng.choice(by_category[category]))], []))
        for _ in range(noisy):
            count = int(rng.integers(1, min(params.max_noises, len(categories)) + 1))
            chosen = sorted(rng.choice(categories, size=count, replace=False), key=categories.index)
            paths = [str(rng.choice(by_category[c])) for c in chosen]
            snrs = [float(rng.uniform(params.snr_db.low, params.snr_db.high)) for _ in chosen]
            rows.append(row("noisy", [*chosen, SPEECH], str(rng.choice(speech)), paths, snrs))
    return pd.DataFrame(rows, columns=COLUMNS)


def place(speech: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """`speech` in a `length`-sample clip: a random stretch of it when longer, else at a random offset amid zeros."""
    if len(speech) >= length:
        start = int(rng.integers(0, len(speech) - length + 1))
        return np.asarray(speech[start : start + length], dtype=np.float64)
    out = np.zeros(length)
    start = int(rng.integers(0, length - len(speech) + 1))
    out[start : start + len(speech)] = speech
    return out


def _entries(joined) -> list[str]:
    return [entry for entry in str(joined).split(SEPARATOR) if entry] if isinstance(joined, str) else []


def render_clip(row, load: Callable[[str], np.ndarray], sample_rate: int, params: ClipParams
                ) -> tuple[np.ndarray, float]:
    """One clip's audio (float32, `params.seconds` long) from its plan row, and the SNR of the speech to all its
    noise together (NaN for a curated clip). `load(path)` gives a corpus file's samples at `sample_rate`."""
    length = int(round(params.seconds * sample_rate))
    rng = np.random.default_rng(int(row.seed))
    noises = [noise_segment(np.asarray(load(path), dtype=np.float64), length, rng)
              for path in _entries(row.noise_paths)]
    if not noises:
        raise ValueError(f"clip {row.id}: no noise file")
    if row.subset == "curated":
        return at_level(noises[0], float(row.level_dbfs)), float("nan")
    speech = place(trim_silence(np.asarray(load(row.speech_path)), sample_rate, params.trim_top_db), length, rng)
    targets = [float(value) for value in _entries(row.snr_db)]
    if len(targets) != len(noises):
        raise ValueError(f"clip {row.id}: {len(noises)} noise files but {len(targets)} SNRs")
    # Each noise scaled to its own SNR against the speech's active frames, then summed; mix_at_snr keeps the sum's
    # SNR (its target is the sum's own) and sets the level and the peak limit.
    scaled = [n * 10.0 ** ((snr_db(speech, n, sample_rate) - t) / 20.0) for n, t in zip(noises, targets)]
    noise = np.sum(scaled, axis=0)
    mixture = mix_at_snr(speech, noise, snr_db(speech, noise, sample_rate), float(row.level_dbfs), sample_rate)
    return mixture.noisy, mixture.realized_snr_db


def render_clips(plan: pd.DataFrame, corpus: Path, sample_rate: int, params: ClipParams,
                 progress: Callable = lambda items, total, what: items) -> tuple[np.ndarray, np.ndarray]:
    """Every clip of `plan` from the corpus folder: ((clips, samples) float32 audio, (clips,) realized SNRs).
    A corpus file whose rate is not `sample_rate` is an error naming it. `progress(items, total, what)` may wrap
    the loop (hushkit.progress.progress)."""
    corpus = Path(corpus)

    @lru_cache(maxsize=None)
    def load(path: str) -> np.ndarray:
        audio, rate = read_audio(corpus / path)
        if rate != sample_rate:
            raise ValueError(f"{corpus / path}: {rate} Hz, but the corpus is at {sample_rate} Hz")
        return audio

    length = int(round(params.seconds * sample_rate))
    audio = np.zeros((len(plan), length), dtype=np.float32)
    snrs = np.full(len(plan), np.nan)
    for i, row in enumerate(progress(plan.itertuples(), len(plan), "tagging clips")):
        audio[i], snrs[i] = render_clip(row, load, sample_rate, params)
    return audio, snrs
