"""Multi-label tagging scores: lwlrap (DCASE 2019 task 2's label-weighted label-ranking average precision), per
class with bootstrap intervals, its chance level, and mean average precision.

`truth` is a (clips, classes) 0/1 matrix, `scores` a matching matrix of real numbers (probabilities or logits:
only their order within a row, or within a column for AP, matters).

lwlrap. For each clip and each of its positive labels, the precision at that label's rank in the clip's ranking of
all classes: of the labels scored at least as high as it, the share that are positive. A class's lwlrap is the
mean of these precisions over the clips where it is positive; the overall lwlrap is the mean over every (clip,
positive label) pair, which is the per-class lwlrap weighted by each class's share of all positive labels
(hence "label-weighted"), and equals scikit-learn's label_ranking_average_precision_score with each clip
weighted by its number of positive labels. Ties count against the label (a label tied with a negative one ranks
below it), as scikit-learn counts them. A clip without a positive label has nothing to rank and is left out, as
DCASE does; a class that no clip has as positive has no per-class lwlrap (NaN) and no weight.

Average precision of a class: the same precision-at-rank mean, taken down the column (the clips ranked by the
class's score) over the clips where the class is positive; it equals scikit-learn's average_precision_score.
mAP is its mean over the classes that have a positive clip.

`bootstrap_interval` gives any of these scores a percentile-bootstrap interval over the clips; `label_confusion` is
a multi-label confusion view (which labels a tagger gives to clips of each true label).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd


def _checked(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, scores = np.asarray(truth), np.asarray(scores, dtype=np.float64)
    if truth.ndim != 2 or truth.shape != scores.shape:
        raise ValueError(f"truth {truth.shape} and scores {scores.shape} must be (clips, classes) matrices of the "
                         "same shape")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("truth must hold only 0 and 1 (multi-hot labels)")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return truth.astype(bool), scores


def label_precisions(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(clips, classes): for each positive (clip, label), the precision at the label's rank within its clip; NaN
    where the label is not positive."""
    truth, scores = _checked(truth, scores)
    at_least = scores[:, None, :] >= scores[:, :, None]  # [i, j, k]: label k scores at least as high as label j
    ranked = at_least.sum(axis=2)
    positive_ranked = (at_least & truth[:, None, :]).sum(axis=2)
    return np.where(truth, positive_ranked / np.maximum(ranked, 1), np.nan)


def lwlrap(truth: np.ndarray, scores: np.ndarray) -> float:
    """The overall lwlrap; NaN when no clip has a positive label."""
    precisions = label_precisions(truth, scores)
    positives = ~np.isnan(precisions)
    return float(precisions[positives].mean()) if positives.any() else float("nan")


def chance_lwlrap(truth: np.ndarray) -> float:
    """The expected lwlrap of scores that rank the labels at random (a uniformly random order per clip).

    A positive label of a clip with k positives among C labels lands at rank r with probability 1/C; the r - 1
    labels above it are a random draw from the other C - 1, of which k - 1 are positive, so its expected precision
    is (1 + (r - 1)(k - 1) / (C - 1)) / r. Averaged over r, and over the positive labels of every clip."""
    truth = np.asarray(truth)
    if truth.ndim != 2 or not np.isin(truth, (0, 1)).all():
        raise ValueError("truth must be a (clips, classes) 0/1 matrix")
    classes = truth.shape[1]
    k = truth.sum(axis=1)
    k = k[k > 0]
    if not len(k):
        return float("nan")
    r = np.arange(1, classes + 1)
    others = max(classes - 1, 1)
    expected = (1.0 + (r[None] - 1) * (k[:, None] - 1) / others) / r[None]  # (clips, ranks)
    return float((k * expected.mean(axis=1)).sum() / k.sum())


def average_precision(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(classes,) average precision of each class over the clips; NaN for a class without a positive clip."""
    truth, scores = _checked(truth, scores)
    result = np.full(truth.shape[1], np.nan)
    for c in range(truth.shape[1]):
        positive = truth[:, c]
        if not positive.any():
            continue
        column = np.sort(scores[:, c])
        positive_column = np.sort(scores[positive, c])
        mine = scores[positive, c]
        ranked = len(column) - np.searchsorted(column, mine, side="left")  # clips scored >= each positive
        positive_ranked = len(positive_column) - np.searchsorted(positive_column, mine, side="left")
        result[c] = float(np.mean(positive_ranked / ranked))
    return result


def mean_average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """mAP: the mean of `average_precision` over the classes that have a positive clip (NaN if none has)."""
    per_class = average_precision(truth, scores)
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")


@dataclass
class LwlrapReport:
    """Overall and per-class lwlrap with percentile-bootstrap intervals over clips.

    `classes`: one row per class: label, lwlrap, low, high (the interval), positives (clips where it is positive),
    weight (its share of all positive labels: the overall lwlrap is the weighted mean of the per-class ones)."""

    overall: float
    low: float
    high: float
    classes: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def per_class_lwlrap(truth: np.ndarray, scores: np.ndarray, labels: list[str] | None = None, *,
                     resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> LwlrapReport:
    """Overall and per-class lwlrap, each with a `confidence` percentile-bootstrap interval: `resamples` resamples of
    the clips (with replacement, from a generator seeded by `seed`), the precisions of each resample's clips
    pooled exactly as for the point estimate. A class absent from a resample has no value there; its interval
    comes from the resamples that have it. A class without a positive clip is NaN throughout, and `notes` says so."""
    precisions = label_precisions(truth, scores)
    clips, classes = precisions.shape
    labels = [str(c) for c in range(classes)] if labels is None else [str(label) for label in labels]
    if len(labels) != classes:
        raise ValueError(f"{len(labels)} labels for {classes} classes")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    positive = ~np.isnan(precisions)
    filled = np.where(positive, precisions, 0.0)
    counts = positive.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = filled.sum(axis=0) / counts
    overall = float(filled.sum() / counts.sum()) if counts.sum() else float("nan")
    # Each resample as a count per clip: its per-class sums are then one matrix product.
    rng = np.random.default_rng(seed)
    draws = np.stack([np.bincount(rng.integers(0, clips, clips), minlength=clips) for _ in range(resamples)]) \
        if clips and resamples else np.zeros((0, clips))
    sums, numbers = draws @ filled, draws @ positive.astype(np.float64)  # (resamples, classes)
    tail = 100.0 * (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = np.where(numbers > 0, sums / numbers, np.nan)
        resampled_overall = sums.sum(axis=1) / numbers.sum(axis=1)
    bounds = np.full((2, classes), np.nan)
    for c in np.flatnonzero(counts):
        values = resampled[:, c][np.isfinite(resampled[:, c])]
        if len(values):
            bounds[:, c] = np.percentile(values, [tail, 100.0 - tail])
    finite = resampled_overall[np.isfinite(resampled_overall)]
    low, high = np.percentile(finite, [tail, 100.0 - tail]) if len(finite) else (np.nan, np.nan)
    table = pd.DataFrame({"label": labels, "lwlrap": point, "low": bounds[0], "high": bounds[1],
                          "positives": counts, "weight": counts / max(int(counts.sum()), 1)})
    notes = [f"class {label!r} has no positive clip: its lwlrap is undefined (NaN) and it carries no weight in the "
             "overall score" for label, count in zip(labels, counts) if not count]
    skipped = int((~positive.any(axis=1)).sum())
    if skipped:
        notes.append(f"{skipped} of {clips} clips have no positive label and are left out (nothing to rank)")
    return LwlrapReport(overall=overall, low=float(low), high=float(high), classes=table, notes=notes)


def bootstrap_interval(statistic: Callable[[np.ndarray, np.ndarray], float], truth: np.ndarray, scores: np.ndarray,
                       *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """The `confidence` percentile-bootstrap interval of `statistic(truth, scores)` (lwlrap, mean_average_precision,
    ...): `resamples` resamples of the clips with replacement, drawn from a generator seeded by `seed`. Resamples
    where the statistic is NaN are left out; (NaN, NaN) when none is finite."""
    truth, scores = np.asarray(truth), np.asarray(scores, dtype=np.float64)
    _checked(truth, scores)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    clips = len(truth)
    values = np.array([statistic(truth[rows], scores[rows]) for rows in
                       (rng.integers(0, clips, clips) for _ in range(resamples if clips else 0))], dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def label_confusion(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(classes, classes) confusions of a multi-label tagger: row i, column j is the mean score of label j over the
    clips that have label i. Off the diagonal only clips that do not also have label j count, so a label truly
    present beside i (speech under a noise) is not taken for a confusion; the diagonal is the mean score of each
    label on its own clips. NaN where no clip qualifies."""
    truth, scores = _checked(truth, scores)
    classes = truth.shape[1]
    result = np.full((classes, classes), np.nan)
    for i in range(classes):
        for j in range(classes):
            keep = truth[:, i] if i == j else truth[:, i] & ~truth[:, j]
            if keep.any():
                result[i, j] = scores[keep, j].mean()
    return result
