"""Running a denoiser on audio: one loader for every model reference.

``load_enhancer`` takes a hushkit checkpoint (``.pt``), an exported ONNX (``.onnx``) or TorchScript (``.ts``, or a
TorchScript archive named ``.pt``) file, an MLflow model URI (``models:/NAME@alias``, ``models:/NAME/VERSION``,
``runs:/ID/path``), a bare MLflow run id (32 hex digits, meaning ``runs:/ID/model``, what the export stage logs) or a
reference system (``baseline:NAME``: noisy, dsp, rnnoise, deepfilternet3; see hushkit.baselines). Every one comes
back as the same interface, an ``Enhancer``: what the evaluation scores and ``hushkit enhance`` runs.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

MODEL_SUFFIXES = (".pt", ".onnx", ".ts")
BASELINE = "baseline:"  # the reference-system scheme
RUN_ID = re.compile(r"[0-9a-f]{32}")


class Enhancer:
    """A loaded model: call it with float32 audio at `sample_rate`, (samples,) or (batch, samples); it returns audio
    of the same shape. `model` is the torch module when there is one (a checkpoint): what streaming needs."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], sample_rate: int, description: str,
                 model: torch.nn.Module | None = None):
        self._fn, self.sample_rate, self.description, self.model = fn, sample_rate, description, model

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            return self._fn(audio[None])[0]
        return self._fn(audio)

    def streamer(self):
        """A fresh StreamingEnhancer of this model; ValueError when the model cannot stream."""
        from hushkit.models.streaming import StreamingEnhancer

        if self.model is None:
            raise ValueError(f"{self.description}: streaming needs a hushkit checkpoint (.pt or an MLflow model), "
                             "not an exported graph")
        return StreamingEnhancer(self.model)


@torch.no_grad()
def enhance_waveform(model: torch.nn.Module, audio: np.ndarray) -> np.ndarray:
    """One mono signal (or a (batch, samples) array) through a torch denoiser, on the model's device."""
    device = next(iter([*model.parameters(), *model.buffers()])).device
    batch = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    out = model((batch[None] if batch.dim() == 1 else batch).to(device)).cpu().numpy()
    return out[0] if batch.dim() == 1 else out


def from_checkpoint(path: Path) -> Enhancer:
    from hushkit.models import load_checkpoint
    from hushkit.models.torchscript_export import is_torchscript_archive

    if is_torchscript_archive(path):
        return from_torchscript(path)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise ValueError(f"{path}: not a hushkit checkpoint (not a torch.save archive)")
    model, meta = load_checkpoint(path, kind="denoiser")  # a tagger's checkpoint cannot enhance
    return Enhancer(lambda audio: enhance_waveform(model, audio), _sample_rate(meta, path),
                    f"{meta['model']} ({path})", model=model)


def from_onnx(path: Path) -> Enhancer:
    import onnx
    import onnxruntime as ort

    from google.protobuf.message import DecodeError

    try:
        metadata = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except DecodeError as err:
        raise ValueError(f"{path}: not an ONNX model (corrupt or another kind of file: {err})") from None
    if "sample_rate" not in metadata:
        raise ValueError(f"{path}: ONNX file has no hushkit sample_rate metadata; export it with hushkit")
    rate = _sample_rate(metadata, path)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception classes (InvalidGraph, Fail, ...): one line naming the file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: onnxruntime cannot load it ({reason})") from None
    return Enhancer(lambda audio: session.run(None, {"noisy": audio})[0], rate,
                    f"{metadata.get('model', 'onnx')} ({path})")


def from_torchscript(path: Path) -> Enhancer:
    from hushkit.models.torchscript_export import load_torchscript

    module, meta = load_torchscript(path)

    @torch.no_grad()
    def run(audio: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(audio)).numpy()

    return Enhancer(run, _sample_rate(meta, path), f"{meta.get('model', 'torchscript')} ({path})")


def _sample_rate(meta: dict, path: Path) -> int:
    """The sample rate a model file records, checked: a positive whole number of Hz."""
    value = meta.get("sample_rate")
    try:
        rate = int(value)
    except (TypeError, ValueError):
        rate = 0
    if rate <= 0:
        raise ValueError(f"{path}: recorded sample rate {value!r} is not a positive whole number of Hz; re-export "
                         "the model with hushkit")
    return rate


def _configure_mlflow():
    """Point mlflow at the project's store (MLFLOW_TRACKING_URI, else params.yaml's mlflow.tracking_uri, else
    sqlite:///mlflow.db) unless the caller already chose one."""
    from hushkit import tracking
    from hushkit.errors import import_extra

    mlflow = import_extra("mlflow", "pipeline", "a model from MLflow (models:/..., runs:/... or a run id)")
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if not is_tracking_uri_set():
        section = {}
        if Path("params.yaml").is_file():
            from hushkit.params import load_params

            section = load_params(Path("params.yaml")).get("mlflow", {}) or {}
        uri = tracking.tracking_uri(section)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    return mlflow


def from_mlflow(uri: str) -> Enhancer:
    """models:/NAME@alias, models:/NAME/VERSION or runs:/ID/path → the checkpoint stored with that model (else its
    TorchScript, else its ONNX file)."""
    mlflow = _configure_mlflow()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as err:  # MlflowException, OSError: name the reference, not a stack trace
        raise ValueError(f"{uri}: cannot fetch the MLflow model ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from err
    found = sorted(local.rglob("*.pt")) or sorted(local.rglob("*.ts")) or sorted(local.rglob("*.onnx"))
    if not found:
        raise ValueError(f"{uri}: no hushkit checkpoint (.pt), .ts or .onnx file among the model's artifacts")
    return load_enhancer(found[0])


def from_baseline(name: str, sample_rate: int) -> Enhancer:
    """A reference system running at `sample_rate` (each resamples to its own rate inside)."""
    from hushkit.baselines import build_baseline

    system = build_baseline(name, sample_rate)
    return Enhancer(lambda batch: np.stack([system(signal) for signal in batch]), int(sample_rate),
                    f"baseline {name}")


def load_enhancer(reference: str | Path, sample_rate: int = 16000) -> Enhancer:
    """Load a denoiser from any model reference: a hushkit checkpoint (``.pt``, e.g. ``data/train/gtcrn/model.pt``),
    an exported ``.onnx`` or TorchScript ``.ts`` file, an MLflow model URI (``models:/hushkit-denoiser@champion``,
    ``models:/NAME/VERSION``, ``runs:/ID/path``; needs ``hushkit[pipeline]``), a bare MLflow run id, or
    ``baseline:<name>`` (a reference system such as ``baseline:rnnoise``, run at `sample_rate`; a model runs at the
    rate it was trained at).

    The returned Enhancer is called with float32 audio at its ``sample_rate``, shaped (samples,) or (batch,
    samples), and returns enhanced audio of the same shape. FileNotFoundError for a missing file, ValueError (naming
    it) for a file that is not a usable hushkit model."""
    text = str(reference)
    if text.startswith(BASELINE):
        return from_baseline(text[len(BASELINE):], sample_rate)
    if "://" in text or text.startswith(("models:/", "runs:/")):
        return from_mlflow(text)
    path = Path(text)
    if not path.is_file():
        if RUN_ID.fullmatch(text):  # a bare run id: the model the export stage logged to that run
            return from_mlflow(f"runs:/{text}/model")
        raise FileNotFoundError(f"{path}: model file not found")
    if path.suffix == ".onnx":
        return from_onnx(path)
    if path.suffix == ".pt":
        return from_checkpoint(path)
    if path.suffix == ".ts":
        return from_torchscript(path)
    raise ValueError(f"{path}: unknown model file type (expected one of {', '.join(MODEL_SUFFIXES)}, an MLflow URI "
                     "or run id)")
