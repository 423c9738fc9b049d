"""Checkpoints written by earlier code keep loading: same state_dict keys (in order), same config, same outputs.

``tests/models/data/<fixture>.pt`` are tiny checkpoints (small constructor arguments, perturbed weights, moved
BatchNorm statistics) saved together with a probe input and the model's output on it. A change to a model's module
layout, parameter names or maths fails here. Regenerate a fixture (``python tests/models/test_checkpoint_compat.py
NAME``) only for a model that is new, or whose checkpoints are knowingly made incompatible.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from hushkit.models import SpectralMaskDenoiser, available_models, build_model, load_checkpoint, save_checkpoint
from hushkit.models.checkpoint import read_checkpoint

DATA = Path(__file__).parent / "data"

# Fixture name → (registered model, constructor arguments): every registered model at least once, and the
# learned-filterbank models in both of their domains.
FIXTURES: dict[str, tuple[str, dict]] = {
    "autoencoder": ("autoencoder", {"channels": 2, "depth": 2, "filterbank": 8}),
    "autoencoder-samples": ("autoencoder", {"channels": 2, "depth": 2, "filterbank": 0, "norm": False}),
    "convtasnet": ("convtasnet", {"N": 16, "L": 8, "B": 4, "H": 4, "X": 2, "R": 1}),
    "crced": ("crced", {"n_fft": 32, "hop": 16, "context": 2, "filters": [2, 2], "widths": [3, 3],
                        "out_width": 3}),
    "crnn": ("crnn", {"n_fft": 32, "hop": 16, "channels": [2, 2], "hidden": 4, "layers": 1}),
    "densenet": ("densenet", {"n_fft": 32, "hop": 16, "growth": 2, "layers_per_block": [1, 1]}),
    "gtcrn": ("gtcrn", {"n_fft": 64, "hop": 32, "channels": 4, "dilations": [1], "rnn_layers": 1,
                        "low_bins": 9, "erb_bands": 8}),
    "segan": ("segan", {"channels": [2, 4], "kernel_size": 5, "z_channels": 2}),
    "segan-filterbank": ("segan", {"channels": [4, 4], "kernel_size": 3, "z_channels": 2, "filterbank": 8,
                                   "norm": True}),
}
PROBE_SAMPLES = 401  # not a multiple of any hop or stride: padding and cropping are exercised


def make_fixture(name: str) -> Path:
    """Write tests/models/data/<name>.pt with the code in use: a model whose every weight and statistic is
    non-trivial, a probe input and its output."""
    model_name, args = FIXTURES[name]
    torch.manual_seed(0)
    model = build_model(model_name, **args)
    with torch.no_grad():
        for parameter in model.parameters():  # no zero-initialised layer hides the others
            parameter.add_(0.1 * torch.randn_like(parameter))
        if isinstance(model, SpectralMaskDenoiser):
            model.set_input_stats(0.3 * torch.randn(model.n_bins), 0.5 + torch.rand(model.n_bins))
        model.train()
        model(0.1 * torch.randn(2, PROBE_SAMPLES))  # moves BatchNorm running statistics
        model.eval()
        probe = 0.1 * torch.randn(2, PROBE_SAMPLES)
        enhanced = model(probe)
    return save_checkpoint(DATA / f"{name}.pt", model, probe_noisy=probe, probe_enhanced=enhanced)


def test_every_registered_model_has_a_fixture():
    assert {model for model, _ in FIXTURES.values()} == set(available_models())


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_a_saved_checkpoint_still_loads_and_enhances_the_same(name):
    path = DATA / f"{name}.pt"
    model_name, args = FIXTURES[name]
    saved = read_checkpoint(path)
    model, meta = load_checkpoint(path)
    assert meta["model"] == model_name and model.name == model_name
    assert model.config == meta["args"] and all(meta["args"][key] == value for key, value in args.items())
    assert list(model.state_dict()) == list(saved["state_dict"])  # names and order
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key]), key
    with torch.no_grad():
        enhanced = model(meta["probe_noisy"])
    # Not bit-exact across machines (float kernels differ by CPU), but any change of maths is far larger.
    torch.testing.assert_close(enhanced, meta["probe_enhanced"], rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    for fixture in sys.argv[1:] or sorted(FIXTURES):
        written = make_fixture(fixture)
        print(written, f"{written.stat().st_size} bytes")
