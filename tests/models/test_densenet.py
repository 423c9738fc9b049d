"""DenseNet specifics: dense connectivity (layer k of a block sees in + k x growth channels), bottlenecks,
compression, frequency pooling and its matching upsampling, the lossless fold, causality in time, ONNX of the
non-default layouts. The Denoiser contract itself is checked for every model in test_models.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hushkit.models import build_model
from hushkit.models.onnx_export import export_onnx, onnx_parity
from tests.models.spectral import prepared_model


def _model(**kwargs) -> nn.Module:
    return prepared_model("densenet", **kwargs)


def test_defaults_and_config():
    model = build_model("densenet")
    assert model.config == {"sample_rate": 16000, "n_fft": 512, "hop": 256, "growth": 8,
                            "layers_per_block": [2, 3, 4], "bottleneck": True, "compression": 0.5,
                            "freq_pool": True, "fold": 4, "stem_channels": 0, "window": "sqrt_hann"}
    assert model.algorithmic_latency_samples == 512
    assert model.level_bins == [65, 33, 17]
    assert [len(block.layers) for block in model.blocks] == [2, 3, 4]
    assert len(model.transitions) == len(model.ups) == 2


@pytest.mark.parametrize("bottleneck", [True, False])
def test_dense_connectivity(bottleneck):
    growth, per_block = 6, [3, 2, 4]
    model = _model(growth=growth, layers_per_block=per_block, bottleneck=bottleneck, compression=0.5)
    seen: dict[nn.Module, int] = {}
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.__setitem__(m, (i[0].shape[1], o.shape[1])))
             for block in model.blocks for layer in block.layers]
    with torch.no_grad():
        model.estimate_mask(torch.randn(2, model.n_bins, 10))
    for hook in hooks:
        hook.remove()

    block_in = 2 * growth  # the stem
    assert model.stem.conv.out_channels == block_in
    for b, (block, count) in enumerate(zip(model.blocks, per_block)):
        for k, layer in enumerate(block.layers):
            assert layer.in_channels == block_in + k * growth
            assert seen[layer] == (block_in + k * growth, growth)  # what it really got and made
            convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
            if bottleneck:  # 1x1 to 4 x growth, then 3x3 to growth
                assert [(c.kernel_size, c.out_channels) for c in convs] == [((1, 1), 4 * growth), ((3, 3), growth)]
            else:
                assert [(c.kernel_size, c.out_channels) for c in convs] == [((3, 3), growth)]
        assert block.out_channels == block_in + count * growth
        if b < len(model.transitions):  # compression θ = 0.5
            conv = model.transitions[b][-1]
            assert conv.kernel_size == (1, 1) and conv.in_channels == block.out_channels
            assert conv.out_channels == int(0.5 * block.out_channels)
            block_in = conv.out_channels


def test_frequency_pooling_and_matching_upsampling():
    model = _model(growth=4, layers_per_block=[1, 1, 1])
    sizes = []
    hooks = [block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:]))) for block in model.blocks]
    hooks += [up.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:]))) for up in model.ups]
    with torch.no_grad():
        mask = model.estimate_mask(torch.randn(2, 257, 7))
    for hook in hooks:
        hook.remove()
    # Down 65 → 33 → 17 bins, up again 33 → 65; never any change in time.
    assert sizes == [(65, 7), (33, 7), (17, 7), (33, 7), (65, 7)]
    assert mask.shape == (2, 257, 7) and 0 <= mask.min() and mask.max() <= 1

    flat = _model(growth=4, layers_per_block=[1, 1], freq_pool=False, fold=1)
    assert flat.level_bins == [257] and len(flat.ups) == 0


@pytest.mark.parametrize("fold", [1, 2, 4, 8])
def test_fold_is_lossless(fold):
    model = build_model("densenet", fold=fold, layers_per_block=[1])
    x = torch.randn(2, 1, 257, 5)
    folded = model._fold(x)
    assert folded.shape == (2, fold, -(-257 // fold), 5)
    assert torch.equal(folded[:, 1 % fold, 0], x[:, 0, 1 % fold])  # channel j holds bins j, fold + j, ...
    assert torch.equal(model._unfold(folded), x[:, 0])


@pytest.mark.parametrize("kwargs", [{}, {"fold": 1, "freq_pool": False, "layers_per_block": [1, 1]}])
def test_causal_output_does_not_depend_on_the_future(kwargs):
    model = _model(**kwargs)
    # Sample t - 1 is the second of a hop block: the one that waits longest (the window's first value is 0).
    n_fft, t = model.n_fft, 20 * model.hop + 2
    x = 0.1 * torch.randn(2, 12000)
    changed = x.clone()
    changed[:, t + n_fft - 1 :] = 0.1 * torch.randn(2, x.shape[1] - (t + n_fft - 1))
    with torch.no_grad():
        y, y_changed, y_prefix = model(x), model(changed), model(x[:, : t + n_fft - 1])
    assert torch.allclose(y[:, :t], y_changed[:, :t], atol=1e-6, rtol=0)
    assert torch.allclose(y[:, :t], y_prefix[:, :t], atol=1e-6, rtol=0)
    assert not torch.allclose(y[:, t:], y_changed[:, t:], atol=1e-4)
    # The test can fail: changes inside the window (faintly at its edge) reach back to before t.
    with torch.no_grad():
        for start, tolerance in ((t + n_fft // 2, 1e-6), (t + n_fft - 3, 0.0)):
            earlier = x.clone()
            earlier[:, start:] += 0.1
            assert not torch.allclose(y[:, :t], model(earlier)[:, :t], atol=tolerance, rtol=0), start


@pytest.mark.parametrize("kwargs", [{"bad": {"layers_per_block": []}}, {"bad": {"layers_per_block": [2, 0]}},
                                    {"bad": {"growth": 0}}, {"bad": {"compression": 0.0}}, {"bad": {"fold": 0}}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        build_model("densenet", **kwargs["bad"])


def test_onnx_of_other_layouts(tmp_path):
    rng = np.random.default_rng(0)
    for i, kwargs in enumerate([{"fold": 1, "freq_pool": False, "layers_per_block": [1, 1], "bottleneck": False},
                                {"fold": 8, "n_fft": 256, "hop": 128, "layers_per_block": [1, 1, 1, 1]}]):
        model = _model(**kwargs)
        path = export_onnx(model, tmp_path / f"model{i}.onnx", example_seconds=0.5)
        for shape in [(1, 20001), (3, 777)]:
            error = onnx_parity(model, path, (0.1 * rng.standard_normal(shape)).astype(np.float32))
            assert error <= 1e-4, (kwargs, shape, error)
