"""The Trainer trains taggers too: binary cross-entropy on (waveform, multi-hot) batches, with mixup, the one-cycle
schedule, EMA and SWA, and the per-layer gradient-norm hook."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hushkit.config import TrainConfig
from hushkit.models import build_model
from hushkit.tagging.data import TaggingSplit
from hushkit.training.gradients import parameter_layers
from hushkit.training.loop import Trainer, mixup, training_loss

pytestmark = pytest.mark.usefixtures("one_thread")

RATE, SAMPLES = 16000, 4000
LABELS = ["tone", "hiss", "low"]
TINY = {"tagcnn": {"channels": [4, 8], "hidden": 8, "n_mels": 16},
        "gcnn": {"channels": [4, 4], "convs_per_block": 1, "hidden": 8, "n_mels": 16}}


def tagging_split(seed: int, clips: int) -> TaggingSplit:
    """Clips holding any non-empty mix of a 1 kHz tone, white hiss and a 100 Hz hum, labelled by what is in them."""
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / RATE
    targets = np.zeros((clips, 3), dtype=np.float32)
    waveforms = np.zeros((clips, SAMPLES), dtype=np.float32)
    for i in range(clips):
        present = rng.random(3) < 0.5
        present[rng.integers(3)] = True
        targets[i] = present
        sources = [np.sin(2 * np.pi * 1000 * t + rng.uniform(0, 6)), rng.standard_normal(SAMPLES),
                   np.sin(2 * np.pi * 100 * t + rng.uniform(0, 6))]
        waveforms[i] = sum(0.1 * rng.uniform(0.5, 1.5) * s for s, on in zip(sources, present) if on)
    return TaggingSplit(waveforms, targets, np.array(["noisy"] * clips))


@pytest.fixture(scope="module")
def splits():
    return tagging_split(0, 48), tagging_split(1, 16)


def tiny_tagger(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch, labels=LABELS, **TINY[arch])


def tagger_trainer(splits, arch: str = "tagcnn", **overrides) -> Trainer:
    train, val = splits
    settings = dict(epochs=3, batch_size=8, steps_per_epoch=6, lr=0.01, weight_decay=0.0)
    config = TrainConfig.parse({**settings, **overrides}, "train", segment=SAMPLES)
    model = tiny_tagger(arch)
    model.prepare(train.prepare_batch(16, SAMPLES, seed=0))
    return Trainer(model, train, val, config, torch.device("cpu"))


def test_the_loss_is_picked_by_the_models_kind():
    config = TrainConfig.parse({"epochs": 1, "batch_size": 2, "steps_per_epoch": 1, "lr": 1e-3}, "train")
    assert training_loss(tiny_tagger("tagcnn"), config) is torch.nn.functional.binary_cross_entropy_with_logits
    assert training_loss(build_model("crced"), config) is not torch.nn.functional.binary_cross_entropy_with_logits


@pytest.mark.parametrize("arch", ["tagcnn", "gcnn"])
def test_a_tagger_learns_with_mixup_onecycle_and_ema(splits, arch):
    trainer = tagger_trainer(splits, arch, mixup_alpha=0.4, ema_decay=0.9, schedule={"name": "onecycle"})
    before = trainer.validate()
    history = trainer.fit()
    assert len(history) == 3 and all(math.isfinite(row["train_loss"]) for row in history)
    assert trainer.best_val < before
    assert trainer.best_val < 0.69  # below a constant 1/2 on every label: it tells the sounds apart
    lrs = [row["lr"] for row in history]
    assert lrs[0] > lrs[-1] and lrs[-1] < 1e-3  # one cycle: up then down to a small fraction of the peak
    assert trainer.evaluated_model is trainer.hooks["ema"].averaged.module
    ema = trainer.hooks["ema"].averaged.module.state_dict()
    assert all(torch.equal(value, ema[key]) for key, value in trainer.model.state_dict().items())


def test_a_tagger_trains_under_swa(splits):
    trainer = tagger_trainer(splits, "tagcnn", swa={"start_epoch": 2, "lr": 0.002})
    history = trainer.fit()
    swa = trainer.hooks["swa"].averaged
    assert int(swa.n_averaged) == 2 and trainer.evaluated_model is swa.module
    assert history[-1]["lr"] == pytest.approx(0.002)


def test_mixup_blends_the_targets_into_soft_labels(splits, monkeypatch):
    trainer = tagger_trainer(splits, epochs=1, steps_per_epoch=3, mixup_alpha=0.4)
    fed = []
    monkeypatch.setattr(trainer, "train_step", lambda inputs, targets: fed.append((inputs, targets)) or (0.1, 1.0))
    trainer.fit()
    rng = np.random.default_rng(trainer.config.seed)
    soft = 0
    for inputs, targets in fed:
        expected = trainer.train.batch(0, 8, SAMPLES, rng)
        expected_inputs, expected_targets = mixup(*expected, 0.4, rng)
        torch.testing.assert_close(inputs, expected_inputs)
        torch.testing.assert_close(targets, expected_targets)
        assert ((targets >= 0) & (targets <= 1)).all()
        soft += int(((targets > 1e-3) & (targets < 1 - 1e-3)).sum())
    assert soft > 0


def test_per_layer_gradient_norms_are_logged_for_every_layer(splits, capsys):
    trainer = tagger_trainer(splits, "gcnn", epochs=1, grad_norms={"per_layer": True})
    history = trainer.fit()
    layers = parameter_layers(trainer.model)
    assert {"rnn", "classify", "attend", "convs.0.conv"} <= set(layers)
    logged = {key.removeprefix("grad_norm."): value for key, value in history[0].items()
              if key.startswith("grad_norm.")}
    assert set(logged) == set(layers) and all(v > 0 and math.isfinite(v) for v in logged.values())
    assert 0 < history[0]["grad_norm_recurrent"] == pytest.approx(logged["rnn"])
    assert "rnn-grad" in capsys.readouterr().out


def test_a_recurrent_gradient_below_the_floor_is_warned_about(splits, capsys):
    tagger_trainer(splits, "gcnn", epochs=1, grad_norms={"recurrent_min": 1e6}).fit()
    out = capsys.readouterr().out
    assert "WARNING" in out and "recurrent layers' mean gradient norm" in out and "recurrent_min" in out
    tagger_trainer(splits, "gcnn", epochs=1, grad_norms={"recurrent_min": 1e-12}).fit()
    assert "recurrent layers" not in capsys.readouterr().out


def test_the_hook_is_on_only_where_it_has_something_to_do(splits):
    assert "grad_norms" in tagger_trainer(splits, "gcnn").hooks  # a GRU, and the default floor
    assert "grad_norms" not in tagger_trainer(splits, "tagcnn").hooks  # no recurrent layer, no per-layer metrics
    assert "grad_norms" in tagger_trainer(splits, "tagcnn", grad_norms={"per_layer": True}).hooks
    assert "grad_norms" not in tagger_trainer(splits, "gcnn", grad_norms={"recurrent_min": 0.0}).hooks
