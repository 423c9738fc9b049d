"""Every architecture exports to one ONNX graph with dynamic batch and time, matching torch within 1e-4; every
streamable one also exports its one-hop streaming step, which run hop by hop matches the offline torch model."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from hushkit.models import available_models, load_checkpoint, save_checkpoint
from hushkit.models.onnx_export import export_onnx, export_streaming_step, onnx_parity, onnx_session, \
    run_streaming_step
from hushkit.models.streaming import streaming_models
from tests.models.spectral import trained_like

ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


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


@pytest.mark.parametrize("name", streaming_models())
def test_streaming_step_graph_hop_by_hop_equals_offline(tmp_path, name):
    model = trained_like(name)
    path = export_streaming_step(model, tmp_path / "step.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.onnx"]
    graph = onnx.load(str(path))
    inputs, outputs = [v.name for v in graph.graph.input], [v.name for v in graph.graph.output]
    states = len(model.stream_state(1))
    assert inputs == ["samples", "input_history", "output_tail", *(f"model_state_{i}" for i in range(states))]
    assert outputs == ["enhanced", *(f"next_{n}" for n in inputs[1:])]
    samples = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert samples == ["batch", model.hop]
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["output_delay_samples"] == str(model.n_fft - model.hop) and meta["model"] == name
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000 + 77) / 16000
    speechlike = 0.2 * np.sin(2 * np.pi * 170 * t) * (np.sin(2 * np.pi * 2.5 * t) > 0)
    audio = (speechlike + 0.05 * rng.standard_normal((2, t.size))).astype(np.float32)  # 3 s, two streams
    with torch.no_grad():
        expected = model(torch.from_numpy(audio)).numpy()
    got = run_streaming_step(path, audio)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= ATOL
    assert np.abs(run_streaming_step(path, audio[0]) - expected[0]).max() <= ATOL  # batch 1 too


def test_streaming_step_export_refuses_offline_models(tmp_path):
    with pytest.raises(ValueError, match="cannot stream"):
        export_streaming_step(trained_like("densenet"), tmp_path / "step.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["autoencoder", "gtcrn"])
def test_an_attenuation_limit_is_part_of_both_graphs(tmp_path, name):
    """The limit (the noisy input mixed back in) is in the exported graph, offline and, where the model streams,
    in the one-hop step: both still equal the torch model with the limit."""
    model = trained_like(name)
    model.set_attenuation_limit(12.0)
    audio = (0.1 * np.random.default_rng(2).standard_normal((2, 12001))).astype(np.float32)
    assert onnx_parity(model, export_onnx(model, tmp_path / "model.onnx"), audio) <= ATOL
    with torch.no_grad():
        unlimited = trained_like(name)(torch.from_numpy(audio)).numpy()
        limited = model(torch.from_numpy(audio)).numpy()
    assert np.abs(limited - unlimited).max() > 10 * ATOL  # the limit changed the output: the check above means it
    if name in streaming_models():
        got = run_streaming_step(export_streaming_step(model, tmp_path / "step.onnx"), audio)
        assert np.abs(got - limited).max() <= ATOL
