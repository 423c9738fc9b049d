import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hushkit.checks import DataCheckError
from hushkit.stages import features
from hushkit.training.data import PackedSplit


def test_packed_arrays_hold_every_train_and_val_pair(features_dir, mix_dir):
    mixtures = pd.read_csv(mix_dir / "manifest.csv")
    for split in ("train", "val"):
        packed = PackedSplit.load(features_dir / split)
        rows = mixtures[mixtures.split == split].sort_values("id")
        assert list(packed.index.id) == list(rows.id)
        clean, noisy = packed.utterance(0)
        expected, _ = sf.read(mix_dir / rows.noisy_path.iat[0], dtype="float32")
        assert np.array_equal(noisy, expected)
    summary = json.loads((features_dir / "summary.json").read_text())
    assert summary["segment_samples"] == summary["sample_rate"]  # tiny profile: 1 s crops


@pytest.mark.parametrize("damage, expectation", [("nan", "all_finite"), ("silence", "rms_db")])
def test_a_broken_mixture_stops_the_stage_naming_file_and_expectation(mix_dir, tiny_params, tmp_path, damage,
                                                                      expectation):
    broken = tmp_path / "mix"
    shutil.copytree(mix_dir, broken)
    victim = pd.read_csv(broken / "manifest.csv").noisy_path.iat[1]
    audio, rate = sf.read(broken / victim, dtype="float32")
    sf.write(broken / victim, np.full_like(audio, np.nan if damage == "nan" else 0.0), rate, subtype="FLOAT")
    with pytest.raises(DataCheckError) as err:
        features.run(tiny_params["features"], mix=broken, corpus=mix_dir.parent / "corpus", out=tmp_path / "features",
                     mix_params=tiny_params["mix"])
    assert victim in str(err.value)
    assert expectation in str(err.value)
    assert (tmp_path / "features" / "checks" / "input_files.json").is_file()
