import math

import numpy as np
import pytest
import torch

from hushkit.models import build_model
from hushkit.training.data import PackedSplit
from hushkit.training.loop import TrainConfig, Trainer


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
    assert trainer.evaluated_model is trainer.ema.module
    kept = trainer.model.state_dict()
    for key, value in trainer.ema.module.state_dict().items():
        assert torch.equal(kept[key], value), key  # the model ends with the averaged weights
