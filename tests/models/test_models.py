"""The Denoiser contract, checked for every registered architecture (new ones are covered automatically)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from hushkit.models import Denoiser, SpectralMaskDenoiser, available_models, build_model, capture_init, register_model
from hushkit.models import base as models_base

# Non-default settings worth covering too (e.g. the paper's cascade with skip connections, kept small here).
EXTRA_CONFIGS = {"crced": [{"repeats": 2, "filters": [8, 12, 8], "hop": 64}]}
CONFIGS = [(name, {}) for name in available_models()] + [
    (name, kwargs) for name, extras in EXTRA_CONFIGS.items() if name in available_models() for kwargs in extras
]
IDS = [f"{name}-{json.dumps(kwargs, sort_keys=True)}" if kwargs else name for name, kwargs in CONFIGS]


def _model(name: str, kwargs: dict, seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    return build_model(name, **kwargs)


def test_something_is_registered():
    assert "crced" in available_models()


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("batch", [1, 3])
def test_forward_keeps_shape_for_any_length(name, kwargs, batch):
    model = _model(name, kwargs).eval()
    with torch.no_grad():
        for length in (1, 255, 16000, 16001, 23457):
            x = 0.1 * torch.randn(batch, length)
            y = model(x)
            assert y.shape == x.shape and y.dtype == torch.float32, (length, y.shape)
            assert torch.isfinite(y).all(), length


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_contract_attributes(name, kwargs):
    model = _model(name, kwargs)
    assert isinstance(model, Denoiser) and model.name == name
    assert model.sample_rate == 16000
    assert isinstance(model.algorithmic_latency_samples, int) and model.algorithmic_latency_samples >= 0
    json.dumps(model.config)  # JSON-serialisable
    rebuilt = build_model(model.name, **model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert build_model(name, **{**kwargs, "sample_rate": 8000}).sample_rate == 8000


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_training_steps_lower_the_loss(name, kwargs):
    torch.manual_seed(0)
    t = torch.arange(8000) / 16000
    clean = torch.stack([0.3 * torch.sin(2 * math.pi * f * t) * torch.sin(2 * math.pi * 3 * t) for f in (220, 440)])
    noisy = clean + 0.1 * torch.randn_like(clean)
    model = _model(name, kwargs).train()
    model.prepare(noisy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = (model(noisy) - clean).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", available_models())
def test_prepare_normalises_spectral_features(name):
    model = _model(name, {})
    if not isinstance(model, SpectralMaskDenoiser):
        pytest.skip("no input statistics")
    noisy = 0.05 * torch.randn(4, 16000) * torch.linspace(0.2, 2.0, 16000)
    model.prepare(noisy)
    feats = (model.input_features(noisy) - model.input_mean[:, None]) / model.input_std[:, None]
    assert feats.mean(dim=(0, 2)).abs().max() < 1e-3
    assert (feats.std(dim=(0, 2)) - 1).abs().max() < 1e-2
    assert "input_mean" in model.state_dict() and "input_std" in model.state_dict()
    with pytest.raises(ValueError, match="values"):
        model.set_input_stats(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        model.set_input_stats(torch.zeros(model.n_bins), torch.zeros(model.n_bins))


def test_registry_is_case_insensitive():
    assert type(build_model("CRCED")) is type(build_model("crced")) is type(build_model("CrCed"))


def test_unknown_model_lists_registered_names():
    with pytest.raises(ValueError) as info:
        build_model("no-such-net")
    message = str(info.value)
    assert "no-such-net" in message
    for name in available_models():
        assert name in message


def test_bad_constructor_arguments_are_a_value_error():
    with pytest.raises(ValueError, match="bogus"):
        build_model("crced", bogus=1)


def test_capture_init_records_the_outermost_constructors_arguments():
    class Tiny(Denoiser):
        @capture_init
        def __init__(self, sample_rate: int = 16000, gain: float = 1.0, taps=(1, 2), **options):
            super().__init__(sample_rate=sample_rate)
            self.gain = torch.nn.Parameter(torch.tensor(float(gain)))

        def forward(self, noisy):
            return noisy * self.gain

    class Tinier(Tiny):  # inherits the decorated __init__
        pass

    class Wrapped(Tiny):
        @capture_init
        def __init__(self, depth: int = 2, **kwargs):
            super().__init__(**kwargs)
            self.depth = depth

    assert Tiny(gain=2.0, extra="x").config == {"sample_rate": 16000, "gain": 2.0, "taps": [1, 2], "extra": "x"}
    assert Tinier(8000).config == {"sample_rate": 8000, "gain": 1.0, "taps": [1, 2]}
    assert Wrapped(depth=3, gain=0.5).config == {"depth": 3, "gain": 0.5}
    assert Denoiser(sample_rate=8000).config == {"sample_rate": 8000}
    with pytest.raises(TypeError, match="JSON"):
        Tiny(gain=1.0, extra=object())
    with pytest.raises(TypeError, match=r"\*args"):
        capture_init(lambda self, *args: None)


def test_register_model_refuses_a_constructor_without_capture_init():
    class Undecorated(Denoiser):
        def __init__(self, sample_rate: int = 16000, gain: float = 1.0):  # would record only sample_rate
            super().__init__(sample_rate=sample_rate)

    with pytest.raises(TypeError, match="capture_init"):
        register_model("tmp-undecorated")(Undecorated)
    assert "tmp-undecorated" not in available_models()


def test_register_model_rejects_duplicates_and_non_denoisers():
    @register_model("tmp-test-net")
    class TmpNet(Denoiser):
        @capture_init
        def __init__(self, sample_rate: int = 16000):
            super().__init__(sample_rate=sample_rate)

    try:
        assert "tmp-test-net" in available_models() and TmpNet.name == "tmp-test-net"
        with pytest.raises(ValueError, match="already registered"):
            register_model("TMP-test-net")(type("Other", (Denoiser,), {}))
        with pytest.raises(TypeError):
            register_model("not-a-model")(torch.nn.Linear)
    finally:
        models_base._REGISTRY.pop("tmp-test-net", None)
