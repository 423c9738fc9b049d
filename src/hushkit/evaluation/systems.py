"""The systems an evaluation scores, named by picklable specs so each scoring process builds its own copy once:
("baseline", name) for a reference system (hushkit.baselines), ("model", reference) for a trained model given as
anything `hushkit enhance --model` takes (checkpoint, ONNX file, MLflow URI)."""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

Enhance = Callable[[np.ndarray], np.ndarray]
Spec = tuple[str, str]


def baseline(name: str) -> Spec:
    return ("baseline", name)


def model(reference) -> Spec:
    return ("model", str(reference))


@functools.cache
def build(spec: Spec, sample_rate: int) -> Enhance:
    """The enhance function of `spec` at `sample_rate`, built once per process (native runtimes and models load in
    the process that uses them)."""
    kind, value = spec
    if kind == "baseline":
        from hushkit.baselines import build_baseline

        return build_baseline(value, sample_rate)
    if kind == "model":
        from hushkit.inference import load_enhancer

        enhancer = load_enhancer(value)
        if enhancer.sample_rate != int(sample_rate):
            raise ValueError(f"{value}: model runs at {enhancer.sample_rate} Hz but the audio is {sample_rate} Hz")
        return enhancer
    raise ValueError(f"unknown system kind {kind!r} (expected 'baseline' or 'model')")
