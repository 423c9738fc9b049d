"""Self-describing checkpoints: the file alone rebuilds the model (name + constructor args + weights), a denoiser's
or a tagger's alike (the registered name says which kind it is).

Payload (a plain dict, written atomically with ``torch.save``)::

    {"format": "hushkit-checkpoint/1", "model": name, "args": model.config, "state_dict": ...,
     "sample_rate": int, "attenuation_limit_db": float or None, "versions": {"hushkit", "torch", "numpy",
     "python"}, **extra}

The train stage adds `environment` (hushkit.training.determinism.environment(): CPU, threads, kernel caps, MKL and
oneDNN builds), so a checkpoint that differs from another's can be explained.

Everything in it is tensors, containers and primitives, so loading uses ``torch.load(weights_only=True)``: a
checkpoint cannot execute code. ``save_checkpoint`` converts numpy scalars/arrays and paths in ``extra`` to
those types and refuses anything else up front (rather than writing a file that will not load).
"""
from __future__ import annotations

import io
import os
import platform
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hushkit
from hushkit.io import atomic_path
from hushkit.models.base import KINDS, Denoiser, Model, build_model, model_class

FORMAT = "hushkit-checkpoint/1"
RESERVED = ("format", "model", "args", "state_dict", "sample_rate", "versions")
# Entries a checkpoint may lack (files written before they existed read as their default).
OPTIONAL = ("attenuation_limit_db",)


def _plain(value: Any, where: str) -> Any:
    """`value` as types `torch.load(weights_only=True)` accepts; TypeError naming `where` otherwise."""
    if value is None or isinstance(value, (torch.Tensor, torch.Size, torch.dtype, torch.device)):
        return value
    for kind in (bool, int, float, str, bytes):  # subclasses (e.g. torch.__version__, IntEnum) as the base type
        if isinstance(value, kind):
            return value if type(value) is kind else kind(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, OrderedDict):
        return OrderedDict((k, _plain(v, f"{where}[{k!r}]")) for k, v in value.items())
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"checkpoint entry {where} has type {type(value).__name__}, which a weights-only load "
                    "cannot restore; store tensors, numbers, strings, lists or dicts")


def save_checkpoint(path: str | os.PathLike, model: Model, **extra: Any) -> Path:
    """Write `model` (and any `extra` entries: epoch, optimizer state, metrics, ...) to `path` atomically."""
    if not isinstance(model, Model) or not model.name:
        raise TypeError(f"save_checkpoint needs a registered model, got {type(model).__name__}")
    clash = sorted(set(extra) & {*RESERVED, *OPTIONAL})
    if clash:
        raise ValueError(f"extra checkpoint entries {clash} would overwrite reserved keys {[*RESERVED, *OPTIONAL]}")
    payload = {
        "format": FORMAT,
        "model": model.name,
        "args": _plain(model.config, "args"),
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items()),
        "sample_rate": int(model.sample_rate),
        "attenuation_limit_db": getattr(model, "attenuation_limit_db", None),  # a denoiser's (hushkit.models.base)
        "versions": {"hushkit": str(hushkit.__version__), "torch": str(torch.__version__),
                     "numpy": np.__version__, "python": platform.python_version()},
        **{key: _plain(value, repr(key)) for key, value in extra.items()},
    }
    # Serialised in memory: torch.save names the zip archive's folder after the file it writes, which would make the
    # atomic write's random temp name part of the bytes; identical weights now give an identical file.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The raw payload of a checkpoint file, validated; ValueError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle, zip and weights-only errors all mean "not one of ours"
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
        detail = next((line for line in lines if "WeightsUnpickler error" in line), lines[0])
        raise ValueError(f"{path}: not a hushkit checkpoint (torch.load failed: {type(err).__name__}: {detail})") \
            from err
    if not isinstance(payload, dict) or "format" not in payload:
        raise ValueError(f"{path}: not a hushkit checkpoint (no 'format' entry; found {type(payload).__name__})")
    if payload["format"] != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {payload['format']!r} (this hushkit reads {FORMAT})")
    missing = [key for key in RESERVED if key not in payload]
    if missing:
        raise ValueError(f"{path}: corrupt hushkit checkpoint, missing {missing}")
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", kind: str | None = None
                    ) -> tuple[Model, dict[str, Any]]:
    """Rebuild the model from the file alone (registry name + args + weights), in eval mode.

    Returns ``(model, meta)``; ``meta`` is the payload without the state_dict (model, args, sample_rate,
    versions and whatever extra entries were saved). With `kind` (`denoiser` or `tagger`), a checkpoint of another
    kind is refused with a ValueError naming the file.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    payload = read_checkpoint(path, map_location)
    if kind is not None:
        try:
            found = model_class(payload["model"]).kind
        except ValueError as err:
            raise ValueError(f"{path}: cannot rebuild model {payload['model']!r}: {err}") from err
        if found != kind:
            raise ValueError(f"{path}: holds the {found} {payload['model']!r}, not a {kind}")
    try:
        model = build_model(payload["model"], **payload["args"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: cannot rebuild model {payload['model']!r}: {err}") from err
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit model {payload['model']!r}: {err}") from err
    if model.sample_rate != payload["sample_rate"]:
        raise ValueError(f"{path}: sample_rate {payload['sample_rate']} disagrees with the model's "
                         f"{model.sample_rate}")
    limit = payload.get("attenuation_limit_db")
    if isinstance(model, Denoiser):
        try:
            model.set_attenuation_limit(limit)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: bad attenuation_limit_db: {err}") from err
    elif limit is not None:
        raise ValueError(f"{path}: a {model.kind} has no attenuation limit, yet the file records {limit!r}")
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    model.eval()
    meta = {key: value for key, value in payload.items() if key != "state_dict"}
    return model, meta
