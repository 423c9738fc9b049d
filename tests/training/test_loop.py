import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from hushkit.config import AdversarialParams, EarlyStoppingParams, LrSchedule, SwaParams, TrainConfig, TrainParams
from hushkit.models import build_model
from hushkit.training.data import PackedSplit
from hushkit.training.loop import Trainer, mixup
from tests.conftest import ROOT
from tests.models.test_segan import SMALL as SEGAN_SMALL


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def splits(features_dir):
    return PackedSplit.load(features_dir / "train"), PackedSplit.load(features_dir / "val")


def test_crops_are_aligned_pairs_of_fixed_length(splits):
    train, _ = splits
    noisy, clean = train.random_batch(5, 4000, np.random.default_rng(0))
    assert noisy.shape == clean.shape == (5, 4000)
    assert not np.array_equal(noisy, clean)


def test_short_training_lowers_validation_loss_and_logs_every_epoch(splits):
    torch.manual_seed(0)
    train, val = splits
    model = build_model("crced", sample_rate=16000)
    model.prepare(torch.from_numpy(train.random_batch(16, 8000, np.random.default_rng(0))[0]))
    logged = []
    config = TrainConfig(epochs=2, batch_size=4, steps_per_epoch=6, lr=3e-3, weight_decay=0.0, segment=8000)
    trainer = Trainer(model, train, val, config, torch.device("cpu"), on_epoch=lambda m, e: logged.append((e, m)))
    before = trainer.validate()
    history = trainer.fit()
    assert [e for e, _ in logged] == [1, 2] and len(history) == 2
    assert trainer.best_val < before
    for _, metrics in logged:
        assert {"train_loss", "val_loss", "grad_norm_mean", "lr"} <= set(metrics)
        assert math.isfinite(metrics["grad_norm_mean"]) and metrics["grad_norm_mean"] > 0


def test_ema_weights_are_validated_and_kept(splits):
    torch.manual_seed(0)
    train, val = splits
    model = build_model("crced", sample_rate=16000)
    config = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=4, lr=3e-3, weight_decay=0.0, segment=8000,
                         ema_decay=0.9)
    trainer = Trainer(model, train, val, config, torch.device("cpu"))
    trainer.fit()
    ema = trainer.hooks["ema"].averaged
    assert trainer.evaluated_model is ema.module
    kept = trainer.model.state_dict()
    for key, value in ema.module.state_dict().items():
        assert torch.equal(kept[key], value), key  # the model ends with the averaged weights


# --- tiny synthetic data and models: the features stage is not needed below -------------------------------------

TINY_CRCED = {"n_fft": 64, "hop": 32, "filters": [4, 4, 2], "widths": [3, 3, 3], "out_width": 3, "context": 2}


def synthetic_split(seed: int, utterances: int = 6, length: int = 3000) -> PackedSplit:
    """Sines in white noise, packed like the features stage's arrays (in memory)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    clean = np.concatenate([0.3 * np.sin(2 * np.pi * rng.uniform(0.01, 0.05) * t) for _ in range(utterances)])
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    index = pd.DataFrame({"id": [f"u{i}" for i in range(utterances)], "offset": np.arange(utterances) * length,
                          "length": [length] * utterances})
    return PackedSplit(clean=clean.astype(np.float32), noisy=noisy.astype(np.float32), index=index)


def tiny_model(arch: str = "crced") -> torch.nn.Module:
    """A small model with seed-fixed initial weights."""
    torch.manual_seed(0)
    return build_model(arch, **(SEGAN_SMALL if arch == "segan" else TINY_CRCED))


def tiny_config(**overrides) -> TrainConfig:
    """A config from params-style settings (`swa={"start_epoch": 2}`), training on 1024-sample crops."""
    settings = dict(epochs=2, batch_size=4, steps_per_epoch=2, lr=1e-3, weight_decay=0.0, loss={"waveform_l1": 1.0})
    return TrainConfig.parse({**settings, **overrides}, "train", segment=1024)


@pytest.fixture(scope="module")
def tiny_splits():
    return synthetic_split(0), synthetic_split(1)


def tiny_trainer(tiny_splits, arch: str = "crced", **overrides) -> Trainer:
    train, val = tiny_splits
    return Trainer(tiny_model(arch), train, val, tiny_config(**overrides), torch.device("cpu"))


# --- early stopping ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("val_losses, patience, min_delta, stopped_at", [
    ([1.0, 0.8, 0.85, 0.81, 0.7, 0.6], 2, 0.0, 4),  # epochs 3 and 4 do not beat 0.8
    ([1.0, 0.95, 0.93, 0.92, 0.91, 0.9], 2, 0.1, 3),  # small gains are no improvement with min_delta 0.1
    # 0.93 beats the reference 1.0 by more than 0.06 and restarts the count; the gains after it are too small.
    ([1.0, 0.95, 0.93, 0.92, 0.91, 0.9], 3, 0.06, 6),
    ([1.0, 1.1, 1.2, 1.3, 1.4, 1.5], 0, 0.0, None),  # patience 0: off
])
def test_early_stopping_stops_after_patience_epochs_without_improvement(tiny_splits, monkeypatch, capsys,
                                                                       val_losses, patience, min_delta, stopped_at):
    trainer = tiny_trainer(tiny_splits, epochs=6, steps_per_epoch=1,
                           early_stopping={"patience": patience, "min_delta": min_delta})
    scripted = iter(val_losses)
    monkeypatch.setattr(trainer, "validate", lambda: next(scripted))
    history = trainer.fit()
    assert trainer.stopped_epoch == stopped_at
    assert len(history) == (stopped_at or 6)
    assert trainer.best_val == min(val_losses[: len(history)])
    assert ("early stopping after epoch" in capsys.readouterr().out) == (stopped_at is not None)


# --- mixup ------------------------------------------------------------------------------------------------------

def test_mixup_blends_noisy_and_clean_with_the_same_weights():
    # Example i's clean signal is the unit vector e_i and its noise e_(B+i): the mixed signals then show their
    # mixing coefficients directly.
    batch = 6
    clean = np.eye(batch, 2 * batch, dtype=np.float32)
    noise = np.eye(batch, 2 * batch, k=batch, dtype=np.float32)
    mixed_noisy, mixed_clean = mixup(clean + noise, clean, 0.4, np.random.default_rng(0))
    clean_weights = mixed_clean[:, :batch]
    noise_weights = (mixed_noisy - mixed_clean)[:, batch:]
    np.testing.assert_allclose(noise_weights, clean_weights, atol=1e-6)  # the same λ on both: still a valid pair
    np.testing.assert_allclose((mixed_noisy - mixed_clean)[:, :batch], 0, atol=1e-6)
    assert (clean_weights >= 0).all() and np.allclose(clean_weights.sum(axis=1), 1)  # convex combinations
    assert ((clean_weights > 1e-6).sum(axis=1) <= 2).all()  # each example and one partner
    assert not np.allclose(clean_weights, np.eye(batch))  # something was mixed


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_trainer_feeds_mixed_batches_only_with_alpha(tiny_splits, monkeypatch, alpha):
    trainer = tiny_trainer(tiny_splits, epochs=1, steps_per_epoch=3, mixup_alpha=alpha)
    fed = []
    monkeypatch.setattr(trainer, "train_step", lambda noisy, clean: fed.append((noisy, clean)) or (0.1, 1.0))
    trainer.fit()
    rng = np.random.default_rng(trainer.config.seed)
    for noisy, clean in fed:
        expected_noisy, expected_clean = trainer.train.random_batch(4, 1024, rng)
        if alpha > 0:
            expected_noisy, expected_clean = mixup(expected_noisy, expected_clean, alpha, rng)
            assert not np.allclose(noisy.numpy(), trainer.train.random_batch(4, 1024, np.random.default_rng(0))[0])
        assert np.array_equal(noisy.numpy(), expected_noisy) and np.array_equal(clean.numpy(), expected_clean)


# --- weight averaging -------------------------------------------------------------------------------------------

def test_swa_averages_the_weights_at_the_end_of_each_averaged_epoch(tiny_splits):
    trainer = tiny_trainer(tiny_splits, epochs=3, swa={"start_epoch": 2, "lr": 2e-4}, ema_decay=0.0)
    swa = trainer.hooks["swa"].averaged
    snapshots, evaluated = [], []

    def on_epoch(metrics, epoch):
        snapshots.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        evaluated.append(trainer.evaluated_model)

    trainer.on_epoch = on_epoch
    history = trainer.fit()
    assert evaluated[0] is trainer.model and evaluated[1] is evaluated[2] is swa.module
    assert int(swa.n_averaged) == 2
    averaged = swa.module.state_dict()
    for key, value in averaged.items():
        if value.is_floating_point():  # weights and BatchNorm running statistics alike
            torch.testing.assert_close(value, (snapshots[1][key] + snapshots[2][key]) / 2, msg=key)
    assert not torch.equal(averaged["output.weight"], snapshots[2]["output.weight"])
    assert history[1]["lr"] == pytest.approx(2e-4)  # SWALR annealed to swa_lr over the first averaged epoch
    assert history[2]["lr"] == pytest.approx(2e-4)


def test_a_start_epoch_after_the_last_is_allowed_with_a_note(tiny_splits, capsys):
    trainer = tiny_trainer(tiny_splits, "segan", epochs=1, swa={"start_epoch": 3}, adversarial={"start_epoch": 2})
    history = trainer.fit()
    out = capsys.readouterr().out
    assert "swa.start_epoch = 3 is after the last epoch" in out and "adversarial.start_epoch = 2" in out
    assert trainer.evaluated_model is trainer.model and "d_loss" not in history[0]


def test_swa_and_ema_together_are_rejected():
    with pytest.raises(ValueError, match="ema_decay"):
        tiny_config(ema_decay=0.99, swa={"start_epoch": 1})


# --- gradient-norm logging --------------------------------------------------------------------------------------

def test_grad_norm_range_is_logged(tiny_splits):
    history = tiny_trainer(tiny_splits, epochs=1, steps_per_epoch=3).fit()
    row = history[0]
    assert 0 < row["grad_norm_min"] <= row["grad_norm_mean"] <= row["grad_norm_max"]


@pytest.mark.parametrize("norm, words", [(1e-6, "vanished"), (math.nan, "not finite"), (0.5, None)])
def test_vanishing_or_non_finite_gradients_print_a_warning(tiny_splits, monkeypatch, capsys, norm, words):
    trainer = tiny_trainer(tiny_splits, epochs=1)
    monkeypatch.setattr(trainer, "train_step", lambda noisy, clean: (0.1, norm))
    trainer.fit()
    out = capsys.readouterr().out
    assert ("WARNING" in out) == (words is not None)
    if words:
        assert words in out


# --- adversarial training ---------------------------------------------------------------------------------------

def test_segan_trains_adversarially_through_the_trainer(tiny_splits):
    trainer = tiny_trainer(tiny_splits, "segan", epochs=2, adversarial={"start_epoch": 2, "weight": 0.5})
    discriminator = trainer.hooks["adversarial"].step.discriminator
    d_params = {id(p) for p in discriminator.parameters()}
    g_params = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert g_params == {id(p) for p in trainer.model.parameters()} and not g_params & d_params
    snapshots = [{k: v.clone() for k, v in discriminator.state_dict().items()}]
    trainer.on_epoch = lambda metrics, epoch: snapshots.append(
        {k: v.clone() for k, v in discriminator.state_dict().items()})
    history = trainer.fit()
    initial, after_first, after_second = snapshots
    # Epoch 1 pre-trains the generator alone; epoch 2 steps the discriminator.
    assert all(torch.equal(initial[k], after_first[k]) for k in initial)
    assert "d_loss" not in history[0]
    assert any(not torch.equal(initial[k], after_second[k]) for k in initial)
    assert {"d_loss", "d_real", "d_fake", "g_adv"} <= set(history[1])
    assert all(math.isfinite(history[1][k]) for k in ("d_loss", "d_real", "d_fake", "g_adv"))


def test_models_without_a_discriminator_train_without_one(tiny_splits):
    trainer = tiny_trainer(tiny_splits, epochs=1)
    assert "adversarial" not in trainer.hooks and "d_loss" not in trainer.fit()[0]


# --- the params schema's TrainConfig ----------------------------------------------------------------------------

FULL_SECTION = {
    "seed": 3, "epochs": 8, "steps_per_epoch": 40, "batch_size": 16, "lr": 0.004, "weight_decay": 0.0001,
    "grad_clip": 2.0, "loss": {"compressed_magnitude": 0.7, "compressed_complex": 0.3}, "ema_decay": 0.0,
    "schedule": {"name": "step", "warmup_steps": 10, "step_every_epochs": 2, "step_gamma": 0.3,
                 "onecycle_pct_start": 0.2},
    "early_stopping": {"patience": 3, "min_delta": 0.01}, "mixup_alpha": 0.4, "swa": {"start_epoch": 5, "lr": 0.001},
    "checkpoint_every": 2, "adversarial": {"weight": 0.01, "lr": 0.0003, "start_epoch": 2},
    "model": "crced", "model_args": {"n_fft": 512}, "device": "auto", "audio_examples": 3,  # not the loop's
}


def test_parse_maps_every_key():
    config = TrainConfig.parse(FULL_SECTION, "train", segment=32000)
    assert config == TrainConfig(
        epochs=8, batch_size=16, steps_per_epoch=40, lr=0.004, weight_decay=0.0001, segment=32000, seed=3,
        grad_clip=2.0, ema_decay=0.0, loss={"compressed_magnitude": 0.7, "compressed_complex": 0.3},
        schedule=LrSchedule(name="step", warmup_steps=10, step_every_epochs=2, step_gamma=0.3, onecycle_pct_start=0.2),
        early_stopping=EarlyStoppingParams(patience=3, min_delta=0.01), mixup_alpha=0.4,
        swa=SwaParams(start_epoch=5, lr=0.001), checkpoint_every=2,
        adversarial=AdversarialParams(weight=0.01, lr=0.0003, start_epoch=2),
        model="crced", model_args={"n_fft": 512}, device="auto", audio_examples=3)


def test_parse_defaults_keep_todays_behaviour():
    minimal = {"epochs": 2, "batch_size": 4, "steps_per_epoch": 3, "lr": 0.01}
    config = TrainConfig.parse(minimal, "train", segment=100)
    assert config == TrainConfig(epochs=2, batch_size=4, steps_per_epoch=3, lr=0.01, weight_decay=0.0, segment=100)
    assert (config.schedule.name, config.schedule.warmup_steps, config.early_stopping.patience, config.mixup_alpha,
            config.swa.start_epoch, config.ema_decay) == ("cosine", 0, 0, 0.0, 0, 0.0)
    assert TrainConfig.parse({**minimal, "swa": None, "schedule": {}}, "train", segment=100) == config


def test_every_architecture_of_the_projects_params_has_a_config():
    from hushkit.params import load_params

    train = TrainParams.parse(load_params(ROOT / "params.yaml")["train"], "train")
    for arch in train.architectures:
        assert train.config(arch, segment=32000).model == arch


@pytest.mark.parametrize("change, key", [
    ({"epochz": 3}, "epochz"),
    ({"schedule": {"name": "cosine", "warmup": 5}}, "warmup"),
    ({"swa": {"start": 2}}, "start"),
    ({"early_stopping": 3}, "early_stopping"),
])
def test_parse_rejects_unknown_keys(change, key):
    with pytest.raises(ValueError, match=rf"unknown key '{key}'; known: |{key} must be a mapping"):
        TrainConfig.parse({**FULL_SECTION, **change}, "train", segment=100)


@pytest.mark.parametrize("change, key", [
    ({"early_stopping": {"patience": -1}}, "early_stopping.patience"),
    ({"early_stopping": {"min_delta": -0.1}}, "early_stopping.min_delta"),
    ({"mixup_alpha": -0.5}, "mixup_alpha"),
    ({"schedule": {"name": "linear"}}, "schedule.name"),
    ({"schedule": {"name": "onecycle", "warmup_steps": 5}}, "schedule.warmup_steps"),
    ({"schedule": {"step_gamma": 0.0}}, "schedule.step_gamma"),
    ({"swa": {"start_epoch": -1}}, "swa.start_epoch"),
    ({"swa": {"start_epoch": 2}, "ema_decay": 0.99}, "swa.start_epoch"),
    ({"swa": {"start_epoch": 2, "lr": "1e-3"}}, "swa.lr"),
    ({"checkpoint_every": -1}, "checkpoint_every"),
    ({"adversarial": {"weight": -1.0}}, "adversarial.weight"),
    ({"epochs": "8"}, "epochs"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": True}, "lr"),
])
def test_parse_rejects_bad_values_naming_the_key(change, key):
    with pytest.raises(ValueError, match=rf"^train\.{re.escape(key)}\b"):
        TrainConfig.parse({**FULL_SECTION, **change}, "train", segment=100)


def test_parse_requires_the_core_keys():
    with pytest.raises(ValueError, match=r"^train: missing key 'lr'$"):
        TrainConfig.parse({k: v for k, v in FULL_SECTION.items() if k != "lr"}, "train", segment=100)


def test_validation_scores_its_own_crop_length_whatever_the_training_crop(splits, monkeypatch):
    train, val = splits
    model = build_model("crced", sample_rate=16000)
    seen = []
    original = PackedSplit.fixed_batches
    monkeypatch.setattr(PackedSplit, "fixed_batches",
                        lambda self, batch, segment: (seen.append(segment), original(self, batch, segment))[1])
    short = dict(epochs=1, batch_size=4, steps_per_epoch=1, lr=1e-3, weight_decay=0.0, segment=4000)
    Trainer(model, train, val, TrainConfig(**short, val_segment=16000), torch.device("cpu")).validate()
    Trainer(model, train, val, TrainConfig(**short), torch.device("cpu")).validate()
    assert seen == [16000, 4000]
    with pytest.raises(ValueError, match="val_segment"):
        TrainConfig(**short, val_segment=-1)
