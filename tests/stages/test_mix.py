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


def test_same_params_give_byte_identical_manifest(corpus_dir, rirs_dir, mix_dir, tiny_params, tmp_path):
    mix.run(tiny_params["mix"], corpus=corpus_dir, out=tmp_path / "again", rirs=rirs_dir)
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


def test_the_test_conditions_hold_out_their_noise_and_reverberate_with_test_rirs(mix_dir, mixtures, rirs_dir,
                                                                               tiny_params):
    conditions = tiny_params["mix"]["conditions"]
    test = mixtures[mixtures.split == "test"]
    counts = test.condition.value_counts().to_dict()
    assert counts["unseen_noise"] == conditions["unseen_noise"]["utterances"]
    assert counts["reverberant"] == conditions["reverberant"]["utterances"]
    held_out = set(conditions["unseen_noise"]["categories"])
    assert set(test[test.condition == "unseen_noise"].noise_category) <= held_out
    assert not held_out & set(mixtures[test.condition.reindex(mixtures.index).fillna("") != "unseen_noise"]
                              .noise_category)
    test_rirs = set(pd.read_csv(rirs_dir / "index.csv").query("split == 'test'").id)
    reverberant = test[test.condition == "reverberant"]
    assert set(reverberant.rir_id) <= test_rirs and (np.abs(reverberant.realized_snr_db
                                                            - reverberant.target_snr_db) <= 0.5).all()
    pools = pd.read_csv(mix_dir / "pools.csv", keep_default_na=False)
    train_speakers = set(mixtures[mixtures.split == "train"].speaker)
    assert set(pools[(pools.kind == "speech") & (pools.split == "train")].speaker) == train_speakers
    assert set(pools[pools.split == "unseen"].category) == held_out


def test_a_reverberant_reference_is_the_early_reflection_speech(mix_dir, mixtures, rirs_dir, corpus_dir, tiny_params):
    from hushkit.audio import trim_silence
    from hushkit.reverb import RirBank, convolve, early_part

    row = mixtures[mixtures.condition == "reverberant"].iloc[0]
    speech, rate = sf.read(corpus_dir / row.speech_path, dtype="float32")
    speech = trim_silence(speech, rate, tiny_params["mix"]["trim_top_db"])
    rir = RirBank.load(rirs_dir).rir(row.rir_id)
    expected = convolve(speech, early_part(rir, rate, 50.0))
    clean, _ = sf.read(mix_dir / row.clean_path, dtype="float32")
    gain = np.dot(clean, expected) / np.dot(expected, expected)
    np.testing.assert_allclose(clean, gain * expected, atol=1e-5)


def test_held_out_categories_must_exist_and_leave_something_to_train_on(corpus_dir, tiny_params, tmp_path):
    params = {**tiny_params["mix"], "conditions": {"unseen_noise": {"categories": ["sirens"], "utterances": 1}}}
    with pytest.raises(ValueError, match=r"\['sirens'\] are not noise categories"):
        mix.run(params, corpus=corpus_dir, out=tmp_path)
    everything = ["white", "babble", "hum", "siren"]
    params["conditions"]["unseen_noise"]["categories"] = everything
    with pytest.raises(ValueError, match="none is left to train on"):
        mix.run(params, corpus=corpus_dir, out=tmp_path)
