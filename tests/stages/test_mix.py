import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hushkit.stages import mix


@pytest.fixture(scope="module")
def mixtures(mix_dir):
    return pd.read_csv(mix_dir / "manifest.csv", keep_default_na=False)


def test_splits_are_disjoint_by_speaker_and_noise_clip(mixtures):
    assert set(mixtures.split) == {"train", "val", "test"}
    assert (mixtures.groupby("speaker").split.nunique() == 1).all()
    assert (mixtures.groupby("noise_path").split.nunique() == 1).all()


def test_realized_snr_matches_target_and_test_levels_are_fixed(mixtures, tiny_params):
    assert (np.abs(mixtures.realized_snr_db - mixtures.target_snr_db) <= 0.5).all()
    test = mixtures[mixtures.split == "test"]
    assert sorted(test.target_snr_db.unique()) == sorted(float(s) for s in tiny_params["mix"]["test_snr_db"])
    low, high = tiny_params["mix"]["snr_db"]["low"], tiny_params["mix"]["snr_db"]["high"]
    assert mixtures[mixtures.split != "test"].target_snr_db.between(low, high).all()


def test_pairs_are_aligned_and_unclipped(mix_dir, mixtures):
    for row in mixtures.head(6).itertuples():
        clean, rate = sf.read(mix_dir / row.clean_path, dtype="float32")
        noisy, _ = sf.read(mix_dir / row.noisy_path, dtype="float32")
        assert clean.shape == noisy.shape and rate == row.sample_rate
        assert np.max(np.abs(noisy)) <= 1.0


def test_same_params_give_byte_identical_manifest(corpus_dir, mix_dir, tiny_params, tmp_path):
    mix.run(tiny_params["mix"], corpus=corpus_dir, out=tmp_path / "again")
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (mix_dir / "manifest.csv").read_bytes()


def test_too_few_speakers_for_the_splits_is_a_clear_error(corpus_dir, tiny_params, tmp_path):
    params = {**tiny_params["mix"], "test_speakers": 50}
    with pytest.raises(ValueError, match="speakers cannot make"):
        mix.run(params, corpus=corpus_dir, out=tmp_path)


def test_test_levels_are_not_confounded_with_noise_category(mixtures):
    test = mixtures[mixtures.split == "test"]
    categories = set(test.noise_category)
    for level, group in test.groupby("target_snr_db"):
        assert set(group.noise_category) == categories, level
