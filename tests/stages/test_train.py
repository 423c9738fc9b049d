"""The train stage's own settings (the training loop itself is tested in tests/training)."""
from __future__ import annotations

import pytest

from hushkit.stages.train import crop_samples
from hushkit.training.loop import TrainConfig


def test_crop_length_defaults_to_the_features_stage():
    assert crop_samples({}, 16000, default=32000) == 32000
    assert crop_samples({"segment_seconds": None}, 16000, default=32000) == 32000


def test_an_architecture_can_train_on_shorter_crops():
    assert crop_samples({"segment_seconds": 0.5}, 16000, default=32000) == 8000
    assert crop_samples({"segment_seconds": 1}, 8000, default=16000) == 8000


@pytest.mark.parametrize("bad", [0, -1.0, "1.0", True])
def test_bad_crop_length_names_the_key(bad):
    with pytest.raises(ValueError, match="segment_seconds"):
        crop_samples({"segment_seconds": bad}, 16000, default=32000)


def test_the_loop_config_accepts_the_stage_key():
    """segment_seconds is the stage's (it sets TrainConfig.segment), so the loop's key check must let it pass."""
    config = TrainConfig.from_params({"epochs": 1, "batch_size": 2, "steps_per_epoch": 1, "lr": 1e-3,
                                      "segment_seconds": 0.5}, segment=8000)
    assert config.segment == 8000 and config.val_segment == 0
