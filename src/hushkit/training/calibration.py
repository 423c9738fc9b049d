"""Choosing a trained model's attenuation limit on the validation split.

A denoiser that suppresses speech along with the noise costs intelligibility: its STOI falls below the noisy
input's even where its PESQ rises. Mixing the input back in at -L dB bounds how far it can suppress
(``Denoiser.set_attenuation_limit``, as DeepFilterNet's attenuation limit). After training, the train stage scores
no limit and each of ``choices_db`` on validation utterances and keeps the weakest (no limit first, then the
largest L) whose mean STOI is within ``stoi_tolerance`` of the best of them: the model gives up no intelligibility
a limit would keep, and no more of its noise reduction than that takes. The weights are the same whatever the
choice: training never sees the limit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hushkit.models import Denoiser
from hushkit.training.data import PackedSplit


@dataclass(frozen=True)
class LimitChoice:
    limit_db: float | None           # what was chosen (None: no limit)
    noisy_stoi: float                # the validation utterances' mean STOI, unprocessed
    stoi: dict[str, float]           # mean STOI per candidate ("none", "20.0", ...)
    utterances: int

    def describe(self) -> str:
        tried = ", ".join(f"{name} dB {value:.3f}" if name != "none" else f"none {value:.3f}"
                          for name, value in self.stoi.items())
        chosen = "none" if self.limit_db is None else f"{self.limit_db:g} dB"
        return (f"attenuation limit {chosen} (validation STOI on {self.utterances} utterances: noisy "
                f"{self.noisy_stoi:.3f}; {tried})")


def _label(db: float | None) -> str:
    return "none" if db is None else f"{float(db):g}"


def _spread(count: int, wanted: int) -> np.ndarray:
    """`wanted` row numbers spread evenly over `count` rows (all of them when there are fewer)."""
    return np.arange(count) if wanted >= count else np.unique(np.linspace(0, count - 1, wanted).round().astype(int))


@torch.no_grad()
def choose_attenuation_limit(model: Denoiser, val: PackedSplit, choices_db: list[float], stoi_tolerance: float,
                             utterances: int) -> LimitChoice:
    """Pick `model`'s attenuation limit on up to `utterances` validation utterances (see the module docstring).
    The model's own limit is left as it was; the caller sets the choice."""
    from pystoi import stoi

    rate = model.sample_rate
    kept, model.dry_gain = model.dry_gain, 0.0
    model.eval()
    candidates: list[float | None] = [None, *sorted((float(db) for db in choices_db), reverse=True)]
    scores: dict[str, list[float]] = {_label(db): [] for db in candidates}
    noisy_scores: list[float] = []
    device = next(iter([*model.parameters(), *model.buffers()])).device
    try:
        for row in _spread(len(val.index), utterances):
            clean, noisy = val.utterance(int(row))
            enhanced = model(torch.tensor(noisy, dtype=torch.float32)[None].to(device))[0]
            enhanced = enhanced.float().cpu().numpy()
            noisy_scores.append(float(stoi(clean, noisy, rate)))
            for db in candidates:
                # The limit is a linear mix, the same on waveforms as on spectra: one forward pass serves all.
                gain = 0.0 if db is None else 10.0 ** (-db / 20.0)
                scores[_label(db)].append(float(stoi(clean, enhanced + gain * (noisy - enhanced), rate)))
    finally:
        model.dry_gain = kept
    if not noisy_scores:
        raise ValueError("choosing an attenuation limit needs at least one validation utterance")
    means = {name: float(np.mean(values)) for name, values in scores.items()}
    noisy_mean = float(np.mean(noisy_scores))
    best = max(means.values())
    chosen = next(db for db in candidates if means[_label(db)] >= best - stoi_tolerance)
    return LimitChoice(limit_db=chosen, noisy_stoi=noisy_mean, stoi=means, utterances=len(noisy_scores))
