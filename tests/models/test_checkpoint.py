"""Checkpoints rebuild the model from the file alone, load weights-only, and refuse other files clearly."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hushkit
from hushkit.models import SpectralMaskDenoiser, available_models, build_model, load_checkpoint, save_checkpoint
from hushkit.models.checkpoint import FORMAT

EXTRA_CONFIGS = {"crced": [{"repeats": 2, "filters": [8, 12, 8], "context": 4, "sample_rate": 8000}]}
CONFIGS = [(name, {}) for name in available_models()] + [
    (name, kwargs) for name, extras in EXTRA_CONFIGS.items() if name in available_models() for kwargs in extras
]
IDS = [f"{name}-{json.dumps(kwargs, sort_keys=True)}" if kwargs else name for name, kwargs in CONFIGS]


def _trained_a_little(name: str, kwargs: dict) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """Weights, BatchNorm running statistics and input statistics all moved away from their initial values."""
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    noisy = 0.1 * torch.randn(2, 4000)
    if isinstance(model, SpectralMaskDenoiser):  # non-trivial per-frequency statistics
        bins = model.n_bins
        model.set_input_stats(torch.linspace(-0.5, 0.5, bins), torch.linspace(0.5, 2.0, bins))
    else:
        model.prepare(noisy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        model(noisy).abs().mean().backward()
        optimizer.step()
    return model.eval(), optimizer


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_round_trip_from_the_file_alone(tmp_path, name, kwargs):
    model, optimizer = _trained_a_little(name, kwargs)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, epoch=3, best_val_loss=np.float32(0.25),
                           optimizer=optimizer.state_dict(), train_params={"lr": 1e-3, "tags": ["a", "b"]})
    assert path == tmp_path / "sub" / "model.pt"
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # atomic: no temp file left beside it

    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config and loaded.sample_rate == model.sample_rate
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = 0.1 * torch.randn(2, 12345)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))

    assert meta["format"] == FORMAT and meta["model"] == name and meta["args"] == model.config
    assert meta["sample_rate"] == model.sample_rate and "state_dict" not in meta
    assert meta["versions"]["hushkit"] == hushkit.__version__ and meta["versions"]["torch"] == torch.__version__
    assert meta["epoch"] == 3 and meta["best_val_loss"] == pytest.approx(0.25)
    assert meta["train_params"] == {"lr": 1e-3, "tags": ["a", "b"]}
    resumed = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    resumed.load_state_dict(meta["optimizer"])

    # Everything in the payload is loadable without unpickling code.
    torch.load(path, weights_only=True)


def test_the_same_weights_give_the_same_bytes(tmp_path):
    """A checkpoint is a DVC output: saved twice (any file name, any time), identical weights are identical files."""
    model, _ = _trained_a_little("crced", {})
    first = save_checkpoint(tmp_path / "a" / "model.pt", model, epoch=1, train_params={"lr": 0.1})
    second = save_checkpoint(tmp_path / "b" / "other-name.pt", model, epoch=1, train_params={"lr": 0.1})
    assert first.read_bytes() == second.read_bytes()


def test_not_a_checkpoint_is_a_value_error_naming_the_file(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.pt.*not a hushkit checkpoint"):
        load_checkpoint(text)

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match=r"tensor\.pt.*not a hushkit checkpoint"):
        load_checkpoint(tensor)

    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(ValueError, match=r"plain\.pt.*'format'"):
        load_checkpoint(plain)

    other = tmp_path / "other.pt"
    torch.save({"format": "someone-else/7"}, other)
    with pytest.raises(ValueError, match=r"other\.pt.*unsupported checkpoint format"):
        load_checkpoint(other)

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_damaged_checkpoints_are_value_errors(tmp_path):
    model = build_model("crced")
    path = save_checkpoint(tmp_path / "model.pt", model)
    payload = torch.load(path, weights_only=True)

    unknown = tmp_path / "unknown.pt"
    torch.save({**payload, "model": "no-such-net"}, unknown)
    with pytest.raises(ValueError, match=r"unknown\.pt.*no-such-net.*crced"):
        load_checkpoint(unknown)

    mismatch = tmp_path / "mismatch.pt"
    torch.save({**payload, "args": {**payload["args"], "repeats": 2}}, mismatch)
    with pytest.raises(ValueError, match=r"mismatch\.pt.*weights do not fit"):
        load_checkpoint(mismatch)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.pt"):
        load_checkpoint(truncated)


def test_save_refuses_what_would_not_load(tmp_path):
    model = build_model("crced")
    with pytest.raises(TypeError, match="'callback'"):
        save_checkpoint(tmp_path / "model.pt", model, callback=lambda: None)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "model.pt", model, state_dict={})
    assert not any(tmp_path.iterdir())
    path = save_checkpoint(tmp_path / "model.pt", model, where=Path("/x"), curve=np.arange(3.0))
    _, meta = load_checkpoint(path)
    assert meta["where"] == "/x" and torch.equal(meta["curve"], torch.arange(3.0, dtype=torch.float64))


@pytest.mark.parametrize("name", available_models())
def test_an_attenuation_limit_mixes_the_input_back_and_is_recorded(tmp_path, name):
    model, _ = _trained_a_little(name, {})
    x = 0.1 * torch.randn(2, 6000)
    with torch.no_grad():
        unlimited = model(x)
        model.set_attenuation_limit(20.0)  # the input mixed back in at -20 dB: a tenth of it
        limited = model(x)
    assert model.attenuation_limit_db == pytest.approx(20.0)
    assert torch.allclose(limited, unlimited + 0.1 * (x - unlimited), atol=1e-5)
    loaded, meta = load_checkpoint(save_checkpoint(tmp_path / "model.pt", model))
    assert meta["attenuation_limit_db"] == pytest.approx(20.0) and loaded.attenuation_limit_db == pytest.approx(20.0)
    with torch.no_grad():
        assert torch.equal(loaded(x), limited)
    model.set_attenuation_limit(None)
    with torch.no_grad():
        assert torch.equal(model(x), unlimited)


@pytest.mark.parametrize("bad", [0.0, -3.0, float("inf"), float("nan")])
def test_an_attenuation_limit_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="attenuation limit must be a positive number of dB"):
        build_model("crced").set_attenuation_limit(bad)


def test_a_bad_recorded_attenuation_limit_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", build_model("crced"))
    payload = torch.load(path, weights_only=True)
    payload["attenuation_limit_db"] = -1.0
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"model\.pt: bad attenuation_limit_db"):
        load_checkpoint(path)
