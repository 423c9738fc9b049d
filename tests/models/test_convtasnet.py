"""Conv-TasNet: receptive field formula, causality, scale equivariance, silence, ONNX of the causal variant."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hushkit.models import build_model
from hushkit.models.convtasnet import _CumulativeLayerNorm, _GlobalLayerNorm
from hushkit.models.filterbank import windowed_fourier_filters
from hushkit.models.onnx_export import export_onnx, onnx_parity

SMALL = {"N": 16, "L": 8, "B": 8, "H": 16, "P": 3, "X": 3, "R": 2}


def _model(seed: int = 0, **kwargs):
    """A randomly initialised model: the identity start zeroes the mask layer, which would hide what the mask
    network's receptive field reaches (its own test is below)."""
    torch.manual_seed(seed)
    kwargs.setdefault("identity_init", False)
    return build_model("convtasnet", **kwargs)


def _without_norms(model: nn.Module) -> nn.Module:
    """Norms use utterance (gLN) or cumulative (cLN) statistics; without them only the convolutions remain."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, (_GlobalLayerNorm, _CumulativeLayerNorm)):
                setattr(module, name, nn.Identity())
    return model


def test_receptive_field_formula():
    model = _model()
    assert model.receptive_field_frames == 1 + model.R * (model.P - 1) * (2 ** model.X - 1)
    assert model.receptive_field_frames == 253 and model.stride == model.L // 2 == 32
    assert model.algorithmic_latency_samples == model.L + 126 * model.stride
    assert _model(causal=True).algorithmic_latency_samples == model.L


@pytest.mark.parametrize("kwargs", [SMALL, {**SMALL, "P": 2, "X": 2, "R": 3}, {**SMALL, "causal": True}])
def test_dependencies_match_receptive_field_and_latency(kwargs):
    model = _without_norms(_model(**kwargs)).double()
    stride, rf = model.stride, model.receptive_field_frames
    length = (3 * rf + 8) * stride
    x = torch.randn(1, length, dtype=torch.float64, requires_grad=True)
    y = model(x)[0]
    start = (rf + 2) * stride
    lookahead = []
    for t in range(start, start + stride):
        (grad,) = torch.autograd.grad(y[t], x, retain_graph=True)
        used = torch.nonzero(grad[0])
        earliest, latest = int(used.min()), int(used.max())
        assert latest - earliest + 1 == rf * stride + model.L, t  # receptive field in samples
        lookahead.append(latest - t)
    assert max(lookahead) + 1 == model.algorithmic_latency_samples


def test_causal_output_ignores_the_future():
    model = _model(causal=True, **{k: v for k, v in SMALL.items()}).eval()
    x = 0.1 * torch.randn(2, 4000)
    L = model.L
    with torch.no_grad():
        y = model(x)
        for t in (0, 800, 1999, 3000):
            changed = x.clone()
            changed[:, t + L:] = 0.1 * torch.randn_like(changed[:, t + L:])
            assert torch.allclose(model(changed)[:, : t + 1], y[:, : t + 1], atol=1e-6), t
        t = 800  # a frame start: its latest frame ends at t + L - 1
        changed = x.clone()
        changed[:, t + L - 1] += 1.0
        assert not torch.allclose(model(changed)[:, t], y[:, t], atol=1e-6)
    # The non-causal model does look ahead.
    noncausal = _model(**SMALL).eval()
    with torch.no_grad():
        changed = x.clone()
        changed[:, 1000 + L:] = 0.1 * torch.randn_like(changed[:, 1000 + L:])
        assert not torch.allclose(noncausal(changed)[:, :1001], noncausal(x)[:, :1001], atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_scale_equivariant(causal):
    model = _model(causal=causal).eval()
    x = 0.1 * torch.randn(2, 6000)
    with torch.no_grad():
        ref = model(x)
        for gain in (0.05, 3.0):
            assert torch.allclose(model(gain * x), gain * ref, rtol=1e-3, atol=1e-4 * gain)


@pytest.mark.parametrize("causal", [False, True])
def test_silence_gives_silence_and_finite_gradients(causal):
    model = _model(causal=causal).train()
    x = torch.zeros(2, 3000, requires_grad=True)
    y = model(x)
    assert torch.equal(y, torch.zeros_like(y))
    (y.sum() + model(0.1 * torch.randn(2, 3000)).abs().mean()).backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_causal_exports_with_dynamic_length(tmp_path):
    model = _model(causal=True, **SMALL)
    with torch.no_grad():  # non-trivial norm and PReLU parameters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    path = export_onnx(model, tmp_path / "tasnet.onnx", example_seconds=0.1)
    rng = np.random.default_rng(0)
    for shape in [(2, 5001), (1, 1), (3, 777)]:
        assert onnx_parity(model, path, (0.1 * rng.standard_normal(shape)).astype(np.float32)) <= 1e-4, shape


@pytest.mark.parametrize("bad", [{"L": 15}, {"L": 0}, {"X": 0}, {"H": 0}])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        build_model("convtasnet", **bad)


def test_identity_init_reconstructs_the_input_at_half_level():
    """N >= 2L: encoder/decoder start as a perfect-reconstruction pair and the mask at 0.5."""
    torch.manual_seed(0)
    x = 0.1 * torch.randn(2, 4001)
    model = build_model("convtasnet", N=32, L=16, B=8, H=16, P=3, X=2, R=1).eval()
    assert torch.allclose(model(x), 0.5 * x, atol=1e-5)
    plain = build_model("convtasnet", N=32, L=16, B=8, H=16, P=3, X=2, R=1, identity_init=False).eval()
    assert not torch.allclose(plain(x), 0.5 * x, atol=1e-2)


def test_identity_init_encoder_is_a_windowed_fourier_filterbank():
    """The identity start is frequency-selective: encoder filter k (and its negative, k + L) is the k-th Fourier
    basis vector under a sqrt-Hann window, so the first mask already acts on frequency bands."""
    L = 16
    model = build_model("convtasnet", N=32, L=L, B=8, H=16, P=3, X=2, R=1)
    expected = windowed_fourier_filters(L)
    weights = model.encoder.weight[:, 0].detach()
    assert torch.allclose(weights[:L], expected, atol=1e-6)
    assert torch.allclose(weights[L : 2 * L], -expected, atol=1e-6)
