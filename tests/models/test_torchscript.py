"""Every architecture exports to one TorchScript file (dynamic batch and length) matching torch within 1e-4."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from hushkit.inference import load_enhancer
from hushkit.models import available_models
from hushkit.models.torchscript_export import export_torchscript, load_torchscript, torchscript_parity
from tests.models.spectral import trained_like

ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", available_models())
def test_parity_on_new_lengths_and_batches(tmp_path, name):
    model = trained_like(name)
    path = export_torchscript(model, tmp_path / "model.ts", example_seconds=0.5)  # traced on (2, 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ts"]  # self-contained, no temp file left
    rng = np.random.default_rng(0)
    for shape in [(23457,), (3, 777), (1, 1), (1, 16001)]:
        audio = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        error = torchscript_parity(model, path, audio)
        assert error <= ATOL, (shape, error)
    module, meta = load_torchscript(path)
    assert meta["sample_rate"] == 16000 and meta["model"] == name and meta["args"] == model.config
    with torch.no_grad():
        assert module(torch.zeros(2, 5000)).shape == (2, 5000)
    assert model.training is False


def test_enhancer_loads_ts_and_torchscript_named_pt(tmp_path):
    model = trained_like("crced")
    model.train()  # export restores the training flag
    path = export_torchscript(model, tmp_path / "model.ts")
    assert model.training
    model.eval()
    audio = (0.1 * np.random.default_rng(1).standard_normal(9999)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(audio)[None])[0].numpy()
    shutil.copy(path, tmp_path / "exported.pt")  # a TorchScript archive under the checkpoint suffix
    for reference in (path, tmp_path / "exported.pt"):
        enhancer = load_enhancer(reference)
        assert enhancer.sample_rate == 16000 and "crced" in enhancer.description
        assert np.abs(enhancer(audio) - expected).max() <= ATOL
        assert enhancer(np.stack([audio, audio])).shape == (2, len(audio))


def test_not_torchscript_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.ts"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="model.ts: not a TorchScript file"):
        load_enhancer(bogus)
