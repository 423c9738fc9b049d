"""Tagging recordings with a trained tagger (`hushkit tag`): what is in each file, or in each segment of it.

* ``load_tagger(path)``: the tagger of a checkpoint (.pt); a denoiser's checkpoint is refused, naming the file;
* ``read_for_tagger(path, rate)``: any file soundfile reads (any format, rate and channel count) as mono float32
  at the tagger's rate (the channels averaged, then resampled), and its duration;
* ``tag_file(tagger, path, threshold, segment_seconds)``: one row for the whole file, or one per segment
  (``segment_seconds`` long, the last one shorter when the file is not a whole number of them; nothing skipped):
  ``file, start_s, end_s``, every label's probability, and ``tags``, the labels above `threshold` joined by `;`
  in the tagger's label order; ``tags_table(rows, labels)`` puts rows in that column order;
* ``predicted_categories(tagger, files)``: each file's most probable noise category (the denoiser evaluation's
  breakdown of files whose category is unknown: a user's recordings, a corpus of unlabelled noise).

A probability is the tagger's clip probability (the sigmoid of its clip logit) of the stretch tagged. A stretch
longer than ``WINDOW_SECONDS`` is scored in equal windows no longer than that, and each label gets its highest
probability over them (a sound heard in any window is in the stretch): memory grows with the window, not the file.
"""
from __future__ import annotations

import math
import os
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from hushkit.audio import AudioReadError, read_audio, resample
from hushkit.config.data import UNCATEGORIZED  # noise that names no kind of noise: never a predicted category
from hushkit.models import Tagger, load_checkpoint
from hushkit.tagging.labels import SEPARATOR, SPEECH

WINDOW_SECONDS = 30.0
POSITION = ("file", "start_s", "end_s")
TAGS = "tags"
PREDICTION = ("id", "predicted_category", "probability")


def load_tagger(path: str | os.PathLike) -> Tagger:
    """The tagger of a checkpoint, in eval mode on the CPU; ValueError naming the file when it holds a denoiser,
    is no hushkit checkpoint, or names a label that would clash with the table's other columns."""
    tagger, _ = load_checkpoint(path, kind="tagger")
    clash = sorted(set(tagger.labels) & {*POSITION, TAGS})
    if clash:
        raise ValueError(f"{path}: the tagger's labels {clash} clash with the table's columns {[*POSITION, TAGS]}")
    return tagger


def read_for_tagger(path: str | os.PathLike, sample_rate: int) -> tuple[np.ndarray, float]:
    """(mono float32 audio at `sample_rate`, the file's duration in seconds); AudioReadError naming the file when
    it is not audio, or holds NaN or infinite samples."""
    audio, rate = read_audio(path, always_2d=True)
    if not np.isfinite(audio).all():
        raise AudioReadError(f"{path}: holds NaN or infinite samples")
    mono = resample(audio.mean(axis=1), rate, sample_rate)
    if not len(mono):
        raise AudioReadError(f"{path}: too short to tag ({len(audio)} frames at {rate} Hz)")
    return mono, len(audio) / rate


def segment_bounds(seconds: float, segment_seconds: float | None) -> list[tuple[float, float]]:
    """(start, end) seconds covering `seconds`: the whole of it without `segment_seconds`, else consecutive
    segments of that length, the last one shorter when `seconds` is not a whole number of them."""
    if segment_seconds is None:
        return [(0.0, seconds)]
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
    # The tolerance keeps float error (1.1 / 0.1 = 11.000000000000002) from adding an empty last segment.
    count = max(1, math.ceil(seconds / segment_seconds - 1e-9))
    return [(i * segment_seconds, min((i + 1) * segment_seconds, seconds)) for i in range(count)]


@torch.no_grad()
def clip_probabilities(tagger: Tagger, audio: np.ndarray, window_seconds: float = WINDOW_SECONDS) -> np.ndarray:
    """(labels,) probabilities of mono `audio` at the tagger's rate: its clip probabilities, or their highest over
    equal windows of at most `window_seconds` when the audio is longer."""
    tagger.eval()
    device = next(tagger.parameters()).device
    window = max(1, round(window_seconds * tagger.sample_rate))
    edges = np.linspace(0, len(audio), math.ceil(len(audio) / window) + 1).round().astype(int)
    scores = [torch.sigmoid(tagger(torch.from_numpy(np.ascontiguousarray(audio[a:b], dtype=np.float32))
                                   .to(device)[None]))[0] for a, b in zip(edges[:-1], edges[1:])]
    return torch.stack(scores).amax(dim=0).cpu().numpy()


def tags_above(labels: list[str], probabilities: np.ndarray, threshold: float) -> str:
    return SEPARATOR.join(label for label, p in zip(labels, probabilities) if p > threshold)


def tag_file(tagger: Tagger, path: str | os.PathLike, *, threshold: float = 0.5,
             segment_seconds: float | None = None, window_seconds: float = WINDOW_SECONDS) -> list[dict]:
    """The file's rows (see the module doc); AudioReadError naming the file when it cannot be read as audio."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    audio, seconds = read_for_tagger(path, tagger.sample_rate)
    rows = []
    for start, end in segment_bounds(seconds, segment_seconds):
        # Sample ranges from the times, so the segments of the resampled audio tile it with nothing left over.
        first = min(round(start * tagger.sample_rate), len(audio) - 1)
        last = len(audio) if end >= seconds else max(round(end * tagger.sample_rate), first + 1)
        probabilities = clip_probabilities(tagger, audio[first:last], window_seconds)
        rows.append({"file": str(path), "start_s": start, "end_s": end,
                     **{label: float(p) for label, p in zip(tagger.labels, probabilities)},
                     TAGS: tags_above(tagger.labels, probabilities, threshold)})
    return rows


def tags_table(rows: list[dict], labels: list[str]) -> pd.DataFrame:
    """Rows as a table: file, start_s, end_s, one column per label, tags (no rows: the columns alone)."""
    return pd.DataFrame(rows, columns=[*POSITION, *labels, TAGS])


def noise_categories(labels: list[str]) -> list[str]:
    """The labels that name a kind of noise: all but `speech` and `uncategorized`."""
    return [label for label in labels if label not in (SPEECH, UNCATEGORIZED)]


def predicted_categories(tagger: Tagger, files: Mapping[str, str | os.PathLike],
                         window_seconds: float = WINDOW_SECONDS) -> pd.DataFrame:
    """Per file (`files`: id → audio file): id, predicted_category (the noise category with the highest clip
    probability, `noise_categories` of the tagger's labels; the first of equal ones) and its probability, in the
    order of `files`. ValueError when the tagger has no noise category; AudioReadError naming a file that cannot be
    read as audio."""
    categories = noise_categories(tagger.labels)
    if not categories:
        raise ValueError(f"the tagger's labels {tagger.labels} hold no noise category to predict")
    columns = [tagger.labels.index(category) for category in categories]
    rows = []
    for file_id, path in files.items():
        audio, _ = read_for_tagger(path, tagger.sample_rate)
        probabilities = clip_probabilities(tagger, audio, window_seconds)[columns]
        best = int(np.argmax(probabilities))  # argmax keeps the first of equal probabilities
        rows.append((file_id, categories[best], float(probabilities[best])))
    return pd.DataFrame(rows, columns=list(PREDICTION))
