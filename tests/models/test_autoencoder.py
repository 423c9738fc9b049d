"""The waveform U-Net autoencoder, on samples and on its Fourier-initialised filterbank: level structure, skips,
level normalisation, look-ahead, ONNX of odd shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hushkit.models import build_model
from hushkit.models.onnx_export import export_onnx, onnx_parity

SMALL = {"channels": 4, "depth": 4, "kernel": 6, "stride": 2, "growth": 2.0, "filterbank": 0, "norm": False}
SAMPLES = {"channels": 16, "depth": 5, "kernel": 8, "stride": 4, "filterbank": 0, "norm": False}  # Demucs-like
SMALL_FB = {**SMALL, "filterbank": 16, "norm": True}


def _model(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_model("autoencoder", **kwargs)


@pytest.mark.parametrize("kwargs", [SAMPLES, SMALL, {**SMALL, "kernel": 7}, {**SMALL, "kernel": 2, "growth": 1.5}])
def test_levels_divide_the_length_and_skips_match(kwargs):
    model = _model(**kwargs).eval()
    stride, depth = model.stride, model.depth
    assert depth == len(model.encoder) == len(model.decoder) and model.total_stride == stride ** depth
    encoded, decoded_inputs = [], []
    hooks = [m.register_forward_hook(lambda mod, inp, out: encoded.append(out)) for m in model.encoder]
    hooks += [m.register_forward_pre_hook(lambda mod, inp: decoded_inputs.append(inp[0])) for m in model.decoder]
    length = 3 * model.total_stride - 5  # padded up to 3 * total stride
    with torch.no_grad():
        y = model(0.1 * torch.randn(2, length))
    for hook in hooks:
        hook.remove()
    assert y.shape == (2, length)
    padded = 3 * model.total_stride
    for level, out in enumerate(encoded, start=1):
        assert out.shape == (2, model.widths[level - 1], padded // stride ** level), level
    # Decoder level i (deepest first) receives decoder output + encoder skip of the same level: same shape.
    assert [tuple(t.shape) for t in decoded_inputs] == [tuple(t.shape) for t in reversed(encoded)]


def test_default_is_deep_enough():
    model = _model()
    assert model.depth >= 4 and model.total_stride == 2 ** 4 and model.filterbank == 64
    assert model.widths == [32, 64, 128, 256]
    samples = _model(**SAMPLES)
    assert samples.total_stride == 4 ** 5 and samples.widths == [16, 32, 64, 128, 256]


@pytest.mark.parametrize("kwargs", [{}, SAMPLES])
def test_level_normalisation_makes_it_scale_equivariant(kwargs):
    model = _model(**kwargs).eval()
    x = torch.randn(2, 8000)
    x = x / x.std(dim=-1, keepdim=True)
    with torch.no_grad():
        for dbfs in (-35.0, -10.0):
            gain = 10 ** (dbfs / 20)
            ref = model(x) * gain
            got = model(x * gain)
            assert torch.allclose(got, ref, rtol=1e-3, atol=1e-3 * ref.abs().max().item()), dbfs


@pytest.mark.parametrize("kwargs", [{}, SAMPLES])
@pytest.mark.parametrize("length", [1, 700])
def test_silence_gives_silence_and_finite_gradients(length, kwargs):
    model = _model(**kwargs).train()
    x = torch.zeros(2, length, requires_grad=True)
    y = model(x)
    assert torch.isfinite(y).all() and y.abs().max() < 1e-5
    (y.sum() + model(0.1 * torch.randn(2, length)).abs().mean()).backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("kwargs", [SMALL, {**SMALL, "kernel": 7}, {**SMALL, "kernel": 8, "stride": 4, "depth": 2},
                                    {**SMALL, "filterbank": 8}])
def test_lookahead_matches_the_receptive_field(kwargs):
    """Gradients of the U-Net (without the global std and norms) show which input steps (samples, or filterbank
    frames) each output step depends on."""
    model = _model(**{**kwargs, "channels": 8, "residual": False, "norm": False}).double()
    period = model.total_stride
    length = 12 * period
    x = torch.randn(1, model.filterbank or 1, length, dtype=torch.float64, requires_grad=True)
    y = model.masker(x)[0, 0]
    start = 4 * period
    for t in range(start, start + period):
        (grad,) = torch.autograd.grad(y[t], x, retain_graph=True)
        latest = int(torch.nonzero(grad[0].abs().sum(0)).max())
        assert latest - t == model.lookahead_of(t - start), t
    worst = max(model.lookahead_of(t) for t in range(period))
    if model.filterbank:  # a window of L samples, then the worst look-ahead in frames of L/2 samples
        assert model.algorithmic_latency_samples == model.filterbank + worst * model.filterbank // 2
    else:
        assert model.algorithmic_latency_samples == worst + 1


def test_default_latency():
    # Samples: encoder (kernel - 1 - pad_left) * (1 + 4 + ... + 4**4) = 5 * 341; bottleneck +1024; decoder phases.
    assert _model(**SAMPLES).algorithmic_latency_samples == 3412
    # Filterbank: 64-sample window + 61 frames of 32 samples (2 * (1 + 2 + 4 + 8) + 16 + decoder phases).
    assert _model().algorithmic_latency_samples == 64 + 61 * 32


@pytest.mark.parametrize("kwargs", [{**SMALL, "kernel": 7}, {**SMALL_FB, "kernel": 7}])
def test_odd_padding_exports_with_dynamic_length(tmp_path, kwargs):
    model = _model(**kwargs).eval()
    path = export_onnx(model, tmp_path / "ae.onnx", example_seconds=0.1)
    rng = np.random.default_rng(0)
    for shape in [(2, 3001), (1, 17), (3, 1)]:
        assert onnx_parity(model, path, (0.05 * rng.standard_normal(shape)).astype(np.float32)) <= 1e-4, shape
    assert onnx_parity(model, path, np.zeros((2, 999), np.float32)) <= 1e-6


@pytest.mark.parametrize("bad", [{"kernel": 3, "stride": 4}, {"depth": 0}, {"channels": 0}, {"growth": 0},
                                 {"filterbank": 7}, {"filterbank": 1}])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        build_model("autoencoder", **bad)


def test_residual_model_starts_as_the_identity():
    x = 0.1 * torch.randn(2, 3001)
    assert torch.allclose(_model(**SAMPLES, residual=True)(x), x)
    assert not torch.allclose(_model(**SAMPLES, residual=False)(x), x)


@pytest.mark.parametrize("length", [1, 31, 3001])
def test_filterbank_starts_as_a_perfect_reconstruction_pair(length):
    """The analysis/synthesis pair starts as an STFT and its inverse: with every gate at 1 (the U-Net's output
    forced high) the model returns its input."""
    model = _model(**SMALL_FB).eval()
    model.masker = lambda coefficients: torch.full_like(coefficients, 60.0)  # sigmoid(60) == 1 in float32
    x = 0.1 * torch.randn(2, length)
    assert torch.allclose(model(x), x, atol=1e-5)
