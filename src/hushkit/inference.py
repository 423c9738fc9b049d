"""Running a denoiser on audio: one loader for every model reference (checkpoint, ONNX file, MLflow URI)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

MODEL_SUFFIXES = (".pt", ".onnx")


class Enhancer:
    """A loaded model: call it with mono float32 audio at `sample_rate`; it returns audio of the same length."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], sample_rate: int, description: str):
        self._fn, self.sample_rate, self.description = fn, sample_rate, description

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return self._fn(np.ascontiguousarray(audio, dtype=np.float32))


@torch.no_grad()
def enhance_waveform(model: torch.nn.Module, audio: np.ndarray) -> np.ndarray:
    """One mono signal through a torch denoiser, on the model's device."""
    device = next(model.parameters()).device
    return model(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(device))[0].cpu().numpy()


def from_checkpoint(path: Path) -> Enhancer:
    from hushkit.models import load_checkpoint

    model, meta = load_checkpoint(path)
    return Enhancer(lambda audio: enhance_waveform(model, audio), int(meta["sample_rate"]), f"{meta['model']} ({path})")


def from_onnx(path: Path) -> Enhancer:
    import onnx
    import onnxruntime as ort

    metadata = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "sample_rate" not in metadata:
        raise ValueError(f"{path}: ONNX file has no hushkit sample_rate metadata; export it with hushkit")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return Enhancer(lambda audio: session.run(None, {"noisy": audio[None]})[0][0], int(metadata["sample_rate"]),
                    f"{metadata.get('model', 'onnx')} ({path})")


def from_mlflow(uri: str) -> Enhancer:
    """models:/NAME@alias, models:/NAME/VERSION or runs:/ID/path → the checkpoint stored with that model."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    found = sorted(local.rglob("*.pt")) or sorted(local.rglob("*.onnx"))
    if not found:
        raise ValueError(f"{uri}: no hushkit checkpoint (.pt) or .onnx file among the model's artifacts")
    return load_enhancer(found[0])


def load_enhancer(reference: str | Path) -> Enhancer:
    text = str(reference)
    if "://" in text or text.startswith(("models:/", "runs:/")):
        return from_mlflow(text)
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.suffix == ".onnx":
        return from_onnx(path)
    if path.suffix == ".pt":
        return from_checkpoint(path)
    raise ValueError(f"{path}: unknown model file type (expected one of {', '.join(MODEL_SUFFIXES)} or an MLflow URI)")


def read_run_id(run_file: Path) -> str:
    return json.loads(Path(run_file).read_text())["run_id"]
