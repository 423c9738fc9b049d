"""TorchScript export of any Denoiser as one self-contained ``model.ts`` file, and a parity check against torch.

Tracing (not scripting): every architecture uses Python control flow that only depends on its configuration
(which the trace freezes, as it should) and size arithmetic on the input, which the tracer records symbolically,
the same mechanism the ONNX export relies on. The traced module takes ``noisy`` (batch, samples) float32 and
returns the enhanced (batch, samples) for any batch and length; ``torchscript_parity`` on a length other than the
trace example's checks that.

The file carries what is needed to use it alone in ``hushkit.json`` (a TorchScript "extra file"): sample_rate,
model name and constructor args, hushkit version. ``torch.jit`` is deprecated in favour of ``torch.export`` but
is what runs in libtorch (C++) and the mobile runtimes without Python, which is the point of this format.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hushkit
from hushkit.io import atomic_path

SUFFIX = ".ts"
META_FILE = "hushkit.json"


def _device(model: torch.nn.Module) -> torch.device:
    return next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))


def export_torchscript(model: torch.nn.Module, path: str | os.PathLike, *, example_seconds: float = 1.0) -> Path:
    """Trace `model` (in eval mode, on CPU tensors of its device) and save it to `path` atomically."""
    path = Path(path)
    rate = int(getattr(model, "sample_rate", 16000))
    example = torch.randn(2, max(1, int(round(example_seconds * rate))), generator=torch.Generator().manual_seed(0))
    meta = {"sample_rate": rate, "model": getattr(model, "name", "") or type(model).__name__,
            "args": getattr(model, "config", {}), "hushkit": hushkit.__version__, "torch": torch.__version__}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Size arithmetic the tracer records symbolically warns; parity on a new length checks it.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, (example.to(_device(model)),), check_trace=False)
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer, _extra_files={META_FILE: json.dumps(meta, sort_keys=True)})
    finally:
        model.train(was_training)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def load_torchscript(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[torch.jit.ScriptModule, dict]:
    """The traced module (eval mode) and its ``hushkit.json`` metadata; ValueError naming the file otherwise."""
    path = Path(path)
    extra = {META_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as err:  # not a TorchScript archive: say so, naming the file
        raise ValueError(f"{path}: not a TorchScript file ({type(err).__name__}: {str(err).splitlines()[0]})") \
            from err
    try:
        meta = json.loads(extra[META_FILE] or "{}")
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt {META_FILE} in the TorchScript file: {err}") from None
    if "sample_rate" not in meta:
        raise ValueError(f"{path}: TorchScript file has no hushkit sample_rate metadata; export it with hushkit")
    return module.eval(), meta


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """A TorchScript file is a zip holding ``<name>/code/``; a hushkit checkpoint (torch.save) has none."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def torchscript_parity(model: torch.nn.Module, ts_path: str | os.PathLike, audio: np.ndarray) -> float:
    """Max |torch - TorchScript| of the enhanced output for `audio` ((T,) or (B, T)), loaded back from the file."""
    batch = torch.from_numpy(np.atleast_2d(np.asarray(audio, dtype=np.float32)))
    if batch.dim() != 2:
        raise ValueError(f"audio must be (samples,) or (batch, samples), got shape {tuple(batch.shape)}")
    device = _device(model)
    module, _ = load_torchscript(ts_path, map_location=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(batch.to(device)).cpu().double()
            got = module(batch.to(device)).cpu().double()
    finally:
        model.train(was_training)
    if got.shape != expected.shape:
        raise ValueError(f"{ts_path}: TorchScript output shape {tuple(got.shape)} != torch {tuple(expected.shape)}")
    return float((got - expected).abs().max()) if expected.numel() else 0.0
