"""ONNX export of any Denoiser as one waveform→waveform graph, and a torch-vs-onnxruntime parity check.

The graph takes ``noisy`` (batch, samples) float32 and returns ``enhanced`` (batch, samples); both axes are
dynamic. STFT models export as plain Conv / ConvTranspose nodes (see ``stft.py``), so one file holds everything.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from hushkit.io import atomic_path

INPUT, OUTPUT = "noisy", "enhanced"
AXES = {0: "batch", 1: "samples"}


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, opset: int = 17,
                example_seconds: float = 1.0) -> Path:
    """Export `model` (in eval mode) to a single self-contained ONNX file at `path`, atomically."""
    path = Path(path)
    rate = int(getattr(model, "sample_rate", 16000))
    example = torch.randn(2, max(1, int(round(example_seconds * rate))), generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about size arithmetic it records symbolically; parity on a new length checks it.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
            torch.onnx.export(
                model, (example.to(device),), buffer, dynamo=False, opset_version=opset,
                input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes={INPUT: AXES, OUTPUT: AXES}, do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(graph)
    with atomic_path(path) as tmp:
        onnx.save(graph, str(tmp))
    return path


def onnx_session(onnx_path: str | os.PathLike):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def onnx_parity(model: torch.nn.Module, onnx_path: str | os.PathLike, audio: np.ndarray) -> float:
    """Max |torch - onnxruntime| of the enhanced output for `audio` ((T,) or (B, T)); run it on a length other
    than the export example's to show the time axis is really dynamic."""
    batch = np.asarray(audio, dtype=np.float32)
    if batch.ndim == 1:
        batch = batch[None]
    if batch.ndim != 2:
        raise ValueError(f"audio must be (samples,) or (batch, samples), got shape {batch.shape}")
    was_training = model.training
    model.eval()
    try:
        device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
        with torch.no_grad():
            expected = model(torch.from_numpy(batch).to(device)).cpu().numpy()
    finally:
        model.train(was_training)
    (got,) = onnx_session(onnx_path).run([OUTPUT], {INPUT: batch})
    if got.shape != expected.shape:
        raise ValueError(f"{onnx_path}: ONNX output shape {got.shape} != torch output shape {expected.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - expected))) if expected.size else 0.0
