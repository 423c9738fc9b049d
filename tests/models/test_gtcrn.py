"""GTCRN specifics: ERB band matrices, shapes, causality, the complex mask, parameter and MAC budgets, streaming equal
to offline at any chunking, checkpoints. Export (ONNX offline and step graph, TorchScript) and the Denoiser contract
are checked for every registered / streamable model in test_onnx.py, test_torchscript.py and test_models.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hushkit.models import build_model, load_checkpoint, save_checkpoint
from hushkit.models.complexity import macs_per_second
from hushkit.models.gtcrn import apply_banded, banded, erb_matrices
from hushkit.models.streaming import stream_enhance
from tests.models.spectral import prepared_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**kwargs) -> torch.nn.Module:
    return prepared_model("gtcrn", **kwargs)


def _speechlike(length: int, streams: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return (tone + 0.05 * rng.standard_normal((streams, length))).astype(np.float32)


def test_defaults_and_budgets():
    model = build_model("gtcrn")
    assert model.config == {"sample_rate": 16000, "n_fft": 512, "hop": 256, "window": "sqrt_hann",
                            "channels": 16, "dilations": [1, 2, 5], "rnn_layers": 2, "rnn": "lstm",
                            "low_bins": 65, "erb_bands": 64}
    assert model.bands == [129, 65, 33] and model.algorithmic_latency_samples == 512
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == model.num_parameters <= 50_000
    assert macs_per_second(model, 4.0) <= 60e6  # the conv STFT and ISTFT (~33 M) included
    # The ERB matrices are fixed: buffers rebuilt from the config, neither trained nor saved.
    assert not [key for key in model.state_dict() if key.startswith("erb_")]
    assert model.erb_merge_index.shape[0] == 64 and model.erb_split_index.shape == (192, 2)
    paper = build_model("gtcrn", rnn="gru")  # the paper's GRUs: fewer parameters and MACs
    assert paper.num_parameters < model.num_parameters and macs_per_second(paper, 4.0) < 60e6


@pytest.mark.parametrize("kwargs", [{"channels": 6}, {"dilations": [1, 0]}, {"rnn_layers": -1},
                                    {"low_bins": 0}, {"low_bins": 257}, {"erb_bands": 193},
                                    {"rnn": "transformer"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        build_model("gtcrn", **kwargs)


def test_erb_matrices_average_bins_and_interpolate_bands():
    merge, split = erb_matrices(257, 65, 64, 16000)
    assert torch.all(merge >= 0) and torch.all(split >= 0)
    assert torch.allclose(merge.sum(1), torch.ones(64)) and torch.allclose(split.sum(1), torch.ones(192))
    widths = (merge > 0).sum(1)
    assert widths[0] < widths[-1]  # ERB bands widen with frequency
    assert torch.equal(split[0], torch.eye(64)[0]) and torch.equal(split[-1], torch.eye(64)[-1])  # edges exact
    ramp = torch.linspace(0, 1, 192)  # linear in the bins: merging averages it, splitting interpolates it back
    assert (split @ (merge @ ramp) - ramp).abs().max() < 0.02
    for matrix in (merge, split):  # the banded form the model applies is the same product
        index, weight = banded(matrix)
        assert index.shape[1] < matrix.shape[1] // 4
        x = torch.randn(3, 5, matrix.shape[1])
        assert torch.allclose(apply_banded(x, index, weight), x @ matrix.T, atol=1e-6)
    with pytest.raises(ValueError, match="between 2 and the 7 bins"):
        erb_matrices(257, 250, 10, 16000)
    with pytest.raises(ValueError, match="too many for 256 bins"):  # low bands narrower than a bin: empty ones
        erb_matrices(257, 1, 256, 16000)


def test_banded_gradient_adds_in_a_fixed_order():
    """The ERB gather's backward must not add with atomics (advanced indexing's CPU backward does: the order of the
    adds, hence the rounding of the weights, then follows thread timing and a busy machine changes them)."""
    merge, _ = erb_matrices(257, 65, 64, 16000)
    index, weight = banded(merge)
    x = torch.randn(4, 3, 50, merge.shape[1], requires_grad=True)
    out = apply_banded(x, index, weight)
    seen, pending = set(), [out.grad_fn]
    while pending:
        node = pending.pop()
        if node is not None and node not in seen:
            seen.add(node)
            pending.extend(next_node for next_node, _ in node.next_functions)
    functions = {type(node).__name__ for node in seen}
    assert "IndexSelectBackward0" in functions and "IndexBackward0" not in functions, functions
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = [torch.autograd.grad(apply_banded(x, index, weight).square().sum(), x)[0] for _ in range(5)]
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(grads[0], g) for g in grads[1:])

@pytest.mark.parametrize("length", [1, 255, 256, 16000 + 7])
def test_output_keeps_shape(length):
    model = _model()
    with torch.no_grad():
        for batch in (1, 2):
            x = 0.1 * torch.randn(batch, length)
            y = model(x)
            assert y.shape == x.shape and torch.isfinite(y).all()
        assert model(x[0]).shape == (length,)


def test_mask_is_complex_and_bounded():
    model = _model()
    x = torch.from_numpy(_speechlike(8000))
    with torch.no_grad():
        real, imag = model.stft(x)
        enhanced_real, enhanced_imag = model.enhance_spectrum(real, imag)
    mask = torch.complex(enhanced_real, enhanced_imag) / torch.complex(real, imag)
    assert mask.imag.abs().max() > 1e-2  # it changes the phase, not only the magnitude
    assert mask.abs().max() <= 2 ** 0.5 + 1e-4  # real and imaginary parts through tanh


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_output_does_not_depend_on_the_future(rnn):
    model = _model(rnn=rnn)
    latency, t = model.algorithmic_latency_samples, 20 * model.hop + 2
    x = 0.1 * torch.randn(2, 12000)
    changed = x.clone()
    changed[:, t:] = 0.1 * torch.randn(2, x.shape[1] - t)
    with torch.no_grad():
        y, y_changed, y_prefix = model(x), model(changed), model(x[:, :t])
    keep = t - latency + 1  # output sample s waits for input up to s + latency - 1
    assert torch.allclose(y[:, :keep], y_changed[:, :keep], atol=1e-6, rtol=0)
    assert torch.allclose(y[:, :keep], y_prefix[:, :keep], atol=1e-6, rtol=0)
    assert not torch.allclose(y[:, keep:t], y_changed[:, keep:t], atol=1e-4)  # within the window it shows


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_streaming_equals_offline_for_any_chunking(rnn):
    model = _model(rnn=rnn)
    audio = _speechlike(12000, streams=2)
    with torch.no_grad():
        expected = model(torch.from_numpy(audio)).numpy()
    assert expected.std() > 0.01
    for chunk in (37, 256, 1000):
        assert np.abs(stream_enhance(model, audio, chunk) - expected).max() <= 1e-5, chunk
    short = audio[:1, :3000]  # sample by sample: 3000 process() calls
    with torch.no_grad():
        expected_short = model(torch.from_numpy(short)).numpy()
    assert np.abs(stream_enhance(model, short, 1) - expected_short).max() <= 1e-5


def test_checkpoint_round_trip(tmp_path):
    model = _model(channels=8, dilations=[1, 3], rnn_layers=1, rnn="gru")
    path = save_checkpoint(tmp_path / "gtcrn.pt", model, epoch=3)
    loaded, meta = load_checkpoint(path)
    assert meta["model"] == "gtcrn" and meta["epoch"] == 3 and loaded.config == model.config
    assert torch.equal(loaded.erb_merge_weight, model.erb_merge_weight)
    x = torch.from_numpy(_speechlike(5000, streams=2))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
