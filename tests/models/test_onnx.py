"""Every architecture exports to one ONNX graph with dynamic batch and time, matching torch within 1e-4."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from hushkit.models import available_models, load_checkpoint, save_checkpoint
from hushkit.models.onnx_export import export_onnx, onnx_parity, onnx_session
from tests.models.spectral import trained_like

ATOL = 1e-4


@pytest.mark.parametrize("name", available_models())
def test_export_is_single_file_with_dynamic_axes(tmp_path, name):
    model = trained_like(name)
    path = export_onnx(model, tmp_path / "model.onnx", opset=17, example_seconds=0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # self-contained, no temp left
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert graph.opset_import[0].version == 17
    (inp,), (out,) = graph.graph.input, graph.graph.output
    assert inp.name == "noisy" and out.name == "enhanced"
    for value in (inp, out):
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "samples"]
    assert model.training is False


@pytest.mark.parametrize("name", available_models())
def test_parity_on_new_lengths_and_batches(tmp_path, name):
    model = trained_like(name)
    path = export_onnx(model, tmp_path / "model.onnx", example_seconds=1.0)  # example: 16000 samples
    rng = np.random.default_rng(0)
    for shape in [(23457,), (2, 23457), (3, 777), (1, 1), (2, 16001)]:
        audio = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        error = onnx_parity(model, path, audio)
        assert error <= ATOL, (shape, error)
    (enhanced,) = onnx_session(path).run(["enhanced"], {"noisy": np.zeros((2, 5000), np.float32)})
    assert enhanced.shape == (2, 5000)


def test_export_from_a_loaded_checkpoint_keeps_training_state(tmp_path):
    model = trained_like(available_models()[0])
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "model.pt", model))
    loaded.train()
    path = export_onnx(loaded, tmp_path / "model.onnx")
    assert loaded.training  # restored after export
    assert onnx_parity(loaded, path, (0.1 * np.random.default_rng(1).standard_normal(9999)).astype(np.float32)) <= ATOL
    assert loaded.training
