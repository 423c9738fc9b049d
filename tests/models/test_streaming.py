"""Streaming inference equals offline inference for the causal models, whatever the chunk sizes, with the stated
fixed latency (one STFT window)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hushkit.models import build_model
from hushkit.models.streaming import StreamingEnhancer, stream_enhance, streaming_models

ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_like(name: str, **kwargs) -> torch.nn.Module:
    """Seeded fresh weights with non-trivial input and BatchNorm statistics (what a trained model has)."""
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    model.set_input_stats(torch.full((model.n_bins,), -5.0), torch.full((model.n_bins,), 3.0))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(0.1 * torch.randn(4, 8000))
    return model.eval()


def _speechlike(length: int, streams: int = 1) -> np.ndarray:
    """A gated harmonic tone in noise: structure in time and frequency for the RNN and convs to act on."""
    rng = np.random.default_rng(0)
    t = np.arange(length) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return (tone + 0.05 * rng.standard_normal((streams, length))).astype(np.float32)


def _offline(model, audio: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(audio)).numpy()


CONFIGS = [("crnn", {}), ("crnn", {"rnn": "lstm", "time_kernel": 3, "hidden": 64}), ("crced", {}), ("gtcrn", {})]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=["crnn", "crnn-lstm-tk3", "crced", "gtcrn"])
def test_streaming_equals_offline_for_any_chunking(name, kwargs):
    model = _trained_like(name, **kwargs)
    audio = _speechlike(20000, streams=2)
    expected = _offline(model, audio)
    assert expected.std() > 0.01  # a real signal, not a collapsed mask
    for chunk in (256, 160, 37, 1001, 20000):  # hop, 10 ms, odd sizes, the whole signal
        got = stream_enhance(model, audio, chunk)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= ATOL, chunk
    short = audio[:1, :900]
    assert np.abs(stream_enhance(model, short, 1) - _offline(model, short)).max() <= ATOL  # sample by sample
    for length in (1, 255, 511, 513):  # shorter than a window, edges of the frame grid
        assert np.abs(stream_enhance(model, audio[:, :length], 100) - _offline(model, audio[:, :length])).max() <= ATOL


@pytest.mark.parametrize("name", ["crced", "gtcrn"])
def test_streaming_with_an_attenuation_limit_equals_offline(name):
    model = _trained_like(name)
    audio = _speechlike(12000)
    unlimited = _offline(model, audio)
    model.set_attenuation_limit(10.0)
    expected = _offline(model, audio)
    assert np.abs(expected - unlimited).max() > 10 * ATOL
    for chunk in (160, 1001):
        assert np.abs(stream_enhance(model, audio, chunk) - expected).max() <= ATOL, chunk


def test_fixed_latency_same_size_chunks_and_reuse():
    model = _trained_like("crnn")
    streamer = StreamingEnhancer(model)
    assert streamer.latency == 512 == model.n_fft and streamer.latency_seconds == pytest.approx(0.032)
    audio = _speechlike(5000)[0]
    sizes = [1, 7, 160, 256, 999, 3577]
    outputs, start = [], 0
    for size in sizes:
        out = streamer.process(audio[start : start + size])
        assert out.shape == (size,)  # a chunk in, a chunk of the same size out
        outputs.append(out)
        start += size
    tail = streamer.flush()
    assert len(tail) == streamer.latency
    stream = np.concatenate([*outputs, tail])
    assert np.all(stream[: streamer.latency] == 0)  # the latency, then the offline output
    assert np.abs(stream[streamer.latency :] - _offline(model, audio[None])[0]).max() <= ATOL
    again = np.concatenate([streamer.process(audio), streamer.flush()])  # flush() reset it for a new stream
    assert again.shape == stream.shape and np.abs(again - stream).max() <= ATOL


def test_non_causal_models_are_refused():
    assert {"crnn", "crced", "gtcrn"} <= set(streaming_models())
    with pytest.raises(ValueError, match="cannot stream"):
        StreamingEnhancer(build_model("crnn", causal=False, hidden=16, channels=[4]))
    with pytest.raises(ValueError, match="'densenet'.*cannot stream"):
        StreamingEnhancer(build_model("densenet"))
    streamer = StreamingEnhancer(_trained_like("crced"))
    streamer.process(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="2 channel"):
        streamer.process(np.zeros((3, 100), np.float32))
