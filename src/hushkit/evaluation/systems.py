"""The systems an evaluation scores, each named by its enhancer reference (a string, so every scoring process builds
its own copy once): `baseline:<name>` for a reference system, or anything `hushkit enhance --model` takes for a
trained model (checkpoint, ONNX or TorchScript file, MLflow URI). Both load through hushkit.inference.load_enhancer."""
from __future__ import annotations

import functools

from hushkit.inference import BASELINE, Enhancer, load_enhancer

Spec = str


def baseline(name: str) -> Spec:
    return f"{BASELINE}{name}"


def model(reference) -> Spec:
    return str(reference)


@functools.cache
def build(spec: Spec, sample_rate: int) -> Enhancer:
    """The enhancer of `spec` at `sample_rate`, built once per process (native runtimes and models load in the
    process that uses them)."""
    enhancer = load_enhancer(spec, sample_rate)
    if enhancer.sample_rate != int(sample_rate):
        raise ValueError(f"{spec}: model runs at {enhancer.sample_rate} Hz but the audio is {sample_rate} Hz")
    return enhancer
