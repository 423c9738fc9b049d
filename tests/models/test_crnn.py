"""CRNN specifics: causality (no look-ahead beyond the STFT window), encoder shapes, GRU/LSTM, ONNX with a real RNN
node and a dynamic time axis. The Denoiser contract itself is checked for every model in test_models.py."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from hushkit.models import build_model
from hushkit.models.crnn import strided_bins
from hushkit.models.onnx_export import export_onnx, onnx_parity
from tests.models.spectral import prepared_model


def _model(**kwargs) -> nn.Module:
    return prepared_model("crnn", **kwargs)


def test_defaults_and_config():
    model = build_model("crnn")
    assert model.config == {"sample_rate": 16000, "n_fft": 512, "hop": 256, "channels": [16, 32, 32, 32],
                            "rnn": "gru", "hidden": 256, "layers": 2, "causal": True, "freq_kernel": 3,
                            "time_kernel": 2, "window": "sqrt_hann"}
    assert isinstance(model.rnn, nn.GRU) and not model.rnn.bidirectional
    assert model.rnn.num_layers == 2 and model.rnn.hidden_size == 256
    assert model.algorithmic_latency_samples == 512 and model.lookahead_frames == 0
    assert model.decoder.out_features == model.n_bins == 257


@pytest.mark.parametrize("kwargs", [{"rnn": "transformer"}, {"channels": [16, 0]},
                                    {"hidden": 0}, {"layers": 0}, {"freq_kernel": 4}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        build_model("crnn", **kwargs)


def test_without_encoder_it_is_a_plain_rnn_on_the_bins():
    model = _model(channels=[], hidden=16, layers=1)
    assert len(model.encoder) == 0 and model.rnn.input_size == 257
    with torch.no_grad():
        assert model(torch.randn(2, 3000)).shape == (2, 3000)


def test_encoder_strides_frequency_only():
    model = _model(channels=[4, 8, 8])
    shapes = []
    hooks = [layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for layer in model.encoder]
    frames = 40
    with torch.no_grad():
        mask = model.estimate_mask(torch.randn(2, model.n_bins, frames))
    for hook in hooks:
        hook.remove()
    assert model.encoder_bins == strided_bins(257, 3, 3) == [257, 129, 65, 33]
    assert shapes == [(2, 4, 129, frames), (2, 8, 65, frames), (2, 8, 33, frames)]
    assert model.rnn.input_size == 8 * 33
    assert mask.shape == (2, 257, frames) and 0 <= mask.min() and mask.max() <= 1


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_causal_output_does_not_depend_on_the_future(rnn):
    model = _model(rnn=rnn, hidden=32, channels=[4, 8])
    # Sample t - 1 is the second of a hop block: the one that waits longest (the window's first value is 0).
    n_fft, t = model.n_fft, 20 * model.hop + 2
    x = 0.1 * torch.randn(2, 12000)
    changed = x.clone()
    changed[:, t + n_fft - 1 :] = 0.1 * torch.randn(2, x.shape[1] - (t + n_fft - 1))  # the tightest bound
    with torch.no_grad():
        y, y_changed = model(x), model(changed)
        # Nor on how much future there is: a prefix of the input gives the same output, up to the window.
        y_prefix = model(x[:, : t + n_fft - 1])
    assert torch.allclose(y[:, :t], y_changed[:, :t], atol=1e-6, rtol=0)
    assert torch.allclose(y[:, :t], y_prefix[:, :t], atol=1e-6, rtol=0)
    assert not torch.allclose(y[:, t:], y_changed[:, t:], atol=1e-4)  # the change is visible after t

    # And the test can fail: a change inside the window reaches back to before t; two samples earlier than the
    # bound, a change still reaches sample t - 1 (through the edges of the window, faintly).
    with torch.no_grad():
        for start, tolerance in ((t + n_fft // 2, 1e-6), (t + n_fft - 3, 0.0)):
            earlier = x.clone()
            earlier[:, start:] += 0.1
            assert not torch.allclose(y[:, :t], model(earlier)[:, :t], atol=tolerance, rtol=0), start


def test_non_causal_is_bidirectional_and_offline():
    model = _model(causal=False, rnn="lstm", hidden=32, channels=[4, 8], time_kernel=3)
    assert model.rnn.bidirectional and model.decoder.in_features == 64
    assert model.lookahead_frames == 2
    with pytest.raises(ValueError, match="offline"):
        model.algorithmic_latency_samples
    x = 0.1 * torch.randn(1, 12000)
    changed = x.clone()
    changed[:, 5000:] = 0.0
    with torch.no_grad():  # the bidirectional RNN carries the future back to the start
        assert not torch.allclose(model(x)[:, :2000], model(changed)[:, :2000], atol=1e-6, rtol=0)


@pytest.mark.parametrize("rnn,op", [("gru", "GRU"), ("lstm", "LSTM")])
def test_onnx_keeps_the_rnn_and_a_dynamic_time_axis(tmp_path, rnn, op):
    model = _model(rnn=rnn, hidden=48, layers=2, channels=[4, 8])
    path = export_onnx(model, tmp_path / "model.onnx", example_seconds=0.5)  # example: (2, 8000)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count(op) == 2 and "Loop" not in ops  # one RNN node per layer, not unrolled over time
    rng = np.random.default_rng(0)
    for shape in [(1, 40000), (3, 777), (4, 16001)]:  # other lengths and batch sizes than the example's
        assert onnx_parity(model, path, (0.1 * rng.standard_normal(shape)).astype(np.float32)) <= 1e-4, shape


def test_lstm_variant_trains():
    torch.manual_seed(0)
    model = build_model("crnn", rnn="lstm", hidden=32, channels=[4, 8])
    assert isinstance(model.rnn, nn.LSTM)
    rebuilt = build_model("crnn", **model.config)
    assert isinstance(rebuilt.rnn, nn.LSTM)
    noisy = 0.1 * torch.randn(2, 4000)
    model(noisy).abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
