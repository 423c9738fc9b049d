"""The attenuation limit chosen on validation STOI (hushkit.training.calibration)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hushkit.config.schema import ParamsError
from hushkit.config.train import AttenuationLimitParams
from hushkit.models import FilterbankDenoiser, build_model
from hushkit.training.calibration import choose_attenuation_limit
from hushkit.training.data import PackedSplit

RATE = 16000


def _split(utterances: int = 3, seconds: float = 2.0) -> PackedSplit:
    """Speech-like clean (a gated harmonic tone whose pitch glides) plus white noise at about 5 dB SNR."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    clean, noisy = [], []
    for k in range(utterances):
        pitch = 120 + 40 * k + 30 * np.sin(2 * np.pi * 0.7 * t)
        voice = sum(np.sin(2 * np.pi * h * np.cumsum(pitch) / RATE) / h for h in range(1, 8))
        signal = 0.1 * voice * (np.sin(2 * np.pi * (3 + k) * t) > 0)
        clean.append(signal)
        noisy.append(signal + 0.05 * rng.standard_normal(t.size))
    length = t.size
    index = pd.DataFrame({"id": [f"val{k}" for k in range(utterances)], "offset": np.arange(utterances) * length,
                          "length": [length] * utterances})
    return PackedSplit(clean=np.concatenate(clean).astype(np.float32),
                       noisy=np.concatenate(noisy).astype(np.float32), index=index)


def _silence_every_other_50_ms(noisy: torch.Tensor) -> torch.Tensor:
    """What a denoiser that wrecks intelligibility does."""
    keep = (torch.arange(noisy.shape[-1]) // 800) % 2 == 0
    return noisy * keep


def _model(wrecking: bool):
    model = build_model("autoencoder", channels=2, depth=1, filterbank=8).eval()
    if wrecking:
        model.forward = _silence_every_other_50_ms  # the choice runs the forward once per utterance
    else:
        model.forward = lambda noisy: noisy  # the input unchanged: no limit can beat it
    return model


def test_a_model_that_loses_intelligibility_gets_the_limit_that_keeps_the_most():
    model = _model(wrecking=True)
    choice = choose_attenuation_limit(model, _split(), [20.0, 10.0, 6.0], stoi_tolerance=0.0, utterances=8)
    means = choice.stoi
    assert list(means) == ["none", "20", "10", "6"]  # weakest first
    assert means["none"] < means["20"] < means["10"] < means["6"]  # more of the input, more intelligible
    assert choice.limit_db == 6.0 and choice.utterances == 3
    assert model.attenuation_limit_db is None  # choosing leaves the model as it was
    assert "attenuation limit 6 dB" in choice.describe()


def test_the_weakest_limit_within_the_tolerance_of_the_best_is_chosen():
    model = _model(wrecking=True)
    means = choose_attenuation_limit(model, _split(), [20.0, 10.0, 6.0], 0.0, utterances=8).stoi
    # A tolerance that the 10-dB limit meets and the 20-dB one does not picks 10 dB, the weaker of 10 and 6.
    tolerance = means["6"] - (means["20"] + means["10"]) / 2
    assert choose_attenuation_limit(model, _split(), [20.0, 10.0, 6.0], tolerance, utterances=8).limit_db == 10.0
    assert choose_attenuation_limit(model, _split(), [20.0, 10.0, 6.0], 1.0, utterances=8).limit_db is None


def test_no_limit_where_the_model_keeps_intelligibility_without_one():
    choice = choose_attenuation_limit(_model(wrecking=False), _split(), [20.0, 10.0], stoi_tolerance=0.0,
                                      utterances=2)
    assert choice.limit_db is None and choice.utterances == 2
    assert choice.stoi["none"] == pytest.approx(choice.noisy_stoi)


def test_the_model_keeps_a_limit_it_already_had():
    model = _model(wrecking=True)
    model.set_attenuation_limit(15.0)
    choose_attenuation_limit(model, _split(), [20.0], stoi_tolerance=0.0, utterances=1)
    assert model.attenuation_limit_db == pytest.approx(15.0)
    assert isinstance(model, FilterbankDenoiser)


@pytest.mark.parametrize("bad,key", [("sometimes", "db"), (0, "db"), (-6.0, "db"), ([], "choices_db"),
                                     ([20.0, 0.0], "choices_db"), (-0.1, "stoi_tolerance")])
def test_bad_attenuation_limit_params_name_the_key(bad, key):
    with pytest.raises(ParamsError, match=rf"train\.common\.attenuation_limit\.{key}"):
        AttenuationLimitParams.parse({key: bad}, "train.common.attenuation_limit")
    assert AttenuationLimitParams.parse({"db": "auto"}, "x").db == "auto"
    assert AttenuationLimitParams.parse({"db": 12}, "x").db == 12.0
