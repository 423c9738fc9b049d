"""A tagger as one ONNX graph, and its registration as a version of the registered tagger model.

The graph takes ``waveform`` (batch, samples) float32 at the tagger's sample rate and returns ``probabilities``
(batch, labels): each label's presence probability, the sigmoid of its clip logit (independent per label: a clip may
hold several). Batch and length are dynamic. Its metadata_props say how to use it alone: ``output``
("probabilities"), ``labels`` (a JSON list, in output order), ``sample_rate``, ``kind`` ("tagger"), and where it came
from (``model``, ``args``, ``hushkit``).

The registered version is MLflow's ONNX flavour of that graph (``mlflow.pyfunc.load_model`` runs it in onnxruntime:
a dict ``{"waveform": array}`` in, ``{"probabilities": array}`` out), with the checkpoint beside it
(``extra_files/model.pt`` among the version's files), logged to the tagger's training run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hushkit.models.onnx_export import checkpoint_metadata, export_onnx, onnx_parity

INPUT, OUTPUT = "waveform", "probabilities"


class ClipProbabilities(nn.Module):
    """A tagger's clip probabilities (the sigmoid of its clip logits), the function the ONNX graph computes."""

    def __init__(self, tagger: nn.Module):
        super().__init__()
        self.tagger = tagger
        self.sample_rate = int(tagger.sample_rate)
        self.train(tagger.training)  # a fresh module is in training mode: leave the tagger's mode as it was

    def forward(self, waveform: Tensor) -> Tensor:
        return torch.sigmoid(self.tagger(waveform))


def tagger_metadata(meta: dict[str, Any], labels: list[str]) -> dict[str, str]:
    """The graph's metadata_props, from the checkpoint's `meta` and the tagger's label names."""
    return {**checkpoint_metadata(meta), "kind": "tagger", "output": OUTPUT, "labels": json.dumps(list(labels))}


def export_tagger(tagger: nn.Module, path: Path, *, meta: dict[str, Any], opset: int = 17) -> Path:
    """The tagger's ONNX graph (see the module docstring) at `path`, written atomically."""
    return export_onnx(ClipProbabilities(tagger), path, opset=opset, input_name=INPUT, output_name=OUTPUT,
                       output_axes={0: "batch"}, metadata=tagger_metadata(meta, tagger.labels))


def tagger_parity(tagger: nn.Module, onnx_path: Path, audio: np.ndarray) -> float:
    """Max |torch - onnxruntime| of the clip probabilities of `audio` ((T,) or (B, T))."""
    return onnx_parity(ClipProbabilities(tagger), onnx_path, audio, input_name=INPUT, output_name=OUTPUT)


def signature(labels: list[str]):
    """The graph's tensors: a batch of waveforms in, a probability per label out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1), INPUT)]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(labels)), OUTPUT)]))


def register_tagger(mlflow, name: str, run_id: str, onnx_path: Path, checkpoint: Path, labels: list[str],
                    tags: dict[str, str]) -> str:
    """Log the ONNX model (with `checkpoint` beside it) to the run `run_id` as a new version of the registered model
    `name`, tag the version with `tags`, and return its number. `mlflow`: the module, set up for the store
    (hushkit.tracking.setup)."""
    import mlflow.onnx
    import onnx
    from mlflow import MlflowClient

    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="model", registered_model_name=name,
                                     save_as_external_data=False, extra_files=[str(checkpoint)],
                                     signature=signature(labels))
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version
