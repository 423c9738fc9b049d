import hashlib

import numpy as np
import pandas as pd
import pytest

from hushkit.checks import DataCheckError, array_stats, audio_file_stats, suites, validate
from hushkit.checks.gx import _batch_def
from hushkit.audio import write_audio
from hushkit.config import MinimumParams


@pytest.fixture(scope="module", autouse=True)
def gx_context():
    _batch_def()  # GX import and context once for the module


def _mixtures():
    rows = []
    plan = [("train", "spk1", "n1"), ("train", "spk2", "n2"), ("val", "spk3", "n3"), ("test", "spk4", "n4"),
            ("test", "spk4", "n5")]
    for i, (split, speaker, noise) in enumerate(plan):
        rows.append({
            "id": f"m{i}", "split": split, "clean_path": f"mix/{split}/clean/m{i}.wav",
            "noisy_path": f"mix/{split}/noisy/m{i}.wav", "speaker": speaker, "language": "en",
            "noise_path": f"noise/{noise}.wav", "noise_category": "babble", "target_snr_db": 5.0,
            "realized_snr_db": 5.1, "level_dbfs": -25.0, "duration": 3.0, "sample_rate": 16000,
            "origin": "mixed", "pair_id": "", "condition": "matched", "rir_id": "",
        })
    return pd.DataFrame(rows)


def test_an_unseen_noise_condition_whose_category_was_trained_on_fails(tmp_path):
    df = _mixtures()
    df.loc[4, "condition"] = "unseen_noise"  # babble, which the training rows have
    with pytest.raises(DataCheckError, match="category_trained"):
        _check_mixtures(df, tmp_path)
    df.loc[4, "noise_category"] = "siren"
    assert _check_mixtures(df, tmp_path)["success"]


def _check_mixtures(df, tmp_path):
    return validate(suites.mixture_manifest_frame(df), suites.mixture_manifest(snr_tolerance_db=0.5),
                    name="mixtures", report_path=tmp_path / "mixtures.json", id_column="noisy_path")


def test_good_mixture_manifest_passes(tmp_path):
    assert _check_mixtures(_mixtures(), tmp_path)["success"]


def test_speaker_in_two_splits_fails_naming_the_rows(tmp_path):
    df = _mixtures()
    df.loc[2, "speaker"] = "spk1"  # spk1 now in train and val
    with pytest.raises(DataCheckError) as info:
        _check_mixtures(df, tmp_path)
    text = str(info.value)
    line = next(ln for ln in text.splitlines() if "column=speaker_splits" in ln)
    assert "mix/val/noisy/m2.wav (speaker_splits=2.0)" in line and "mix/train/noisy/m0.wav" in line
    assert "mix/train/noisy/m1.wav" not in text
    assert len(info.value.failures) == 1


def test_noise_in_two_splits_fails(tmp_path):
    df = _mixtures()
    df.loc[3, "noise_path"] = "noise/n1.wav"
    with pytest.raises(DataCheckError, match=r"column=noise_splits.*mix/test/noisy/m3.wav"):
        _check_mixtures(df, tmp_path)


def test_snr_error_over_tolerance_fails(tmp_path):
    df = _mixtures()
    df.loc[1, "realized_snr_db"] = 5.6
    with pytest.raises(DataCheckError) as info:
        _check_mixtures(df, tmp_path)
    assert ("expect_column_values_to_be_between(column=snr_error_db, max_value=0.5) where origin==\"mixed\": "
            "mix/train/noisy/m1.wav (snr_error_db=0.6)") in str(info.value)


def test_nan_realized_snr_and_bad_split_fail(tmp_path):
    df = _mixtures()
    df.loc[0, "realized_snr_db"] = np.nan
    df.loc[4, "split"] = "dev"
    with pytest.raises(DataCheckError) as info:
        _check_mixtures(df, tmp_path)
    text = str(info.value)
    assert ("column=snr_error_db) where origin==\"mixed\" [NaN and inf count as null]: mix/train/noisy/m0.wav "
            "(snr_error_db=nan)") in text
    assert "column=split, value_set=['train', 'val', 'test']): mix/test/noisy/m4.wav (split=dev)" in text


def test_recorded_pairs_need_no_target_snr_or_noise_file_but_stay_speaker_disjoint(tmp_path):
    df = _mixtures()
    recorded = {"origin": "recorded", "noise_path": "", "target_snr_db": 10.0, "realized_snr_db": 11.9}
    for column, value in recorded.items():
        df.loc[[3, 4], column] = value
    assert _check_mixtures(df, tmp_path)["success"]  # measured SNR 2 dB off its level, no noise file: fine
    df.loc[4, "speaker"] = "spk1"  # a recorded speaker also in train
    with pytest.raises(DataCheckError, match=r"column=speaker_splits.*mix/test/noisy/m4.wav"):
        _check_mixtures(df, tmp_path)
    df = _mixtures()
    df.loc[2, "origin"] = "found"
    with pytest.raises(DataCheckError, match=r"column=origin.*mix/val/noisy/m2.wav \(origin=found\)"):
        _check_mixtures(df, tmp_path)


def _corpus():
    rows = []
    for i in range(4):
        rows.append({"path": f"speech/s{i}.wav", "kind": "speech", "speaker": f"spk{i % 3}", "category": None,
                     "language": "en", "text": "hello", "voice": "v", "duration": 2.0})
    for i in range(3):
        rows.append({"path": f"noise/n{i}.wav", "kind": "noise", "speaker": None, "category": f"cat{i % 2}",
                     "language": None, "text": None, "voice": None, "duration": 5.0})
    df = pd.DataFrame(rows)
    df["sample_rate"] = 16000
    df["sha256"] = [hashlib.sha256(p.encode()).hexdigest() for p in df["path"]]
    df["source"], df["license"] = "synthetic", "CC0"
    df["split"], df["pair_id"] = "", ""
    return df


def test_corpus_manifest(tmp_path):
    check = dict(name="corpus", report_path=tmp_path / "corpus.json")
    good = suites.corpus_manifest_frame(_corpus())
    assert (good["n_speakers"].iloc[0], good["n_categories"].iloc[0]) == (3, 2)
    assert validate(good, suites.corpus_manifest(3, 2, 16000), **check)["success"]

    bad = _corpus().drop(columns=["license"])
    bad.loc[1, "sha256"] = "ABC"
    with pytest.raises(DataCheckError) as info:
        validate(suites.corpus_manifest_frame(bad), suites.corpus_manifest(4, 2, 16000), **check)
    text = str(info.value)
    assert "missing columns ['license']" in text
    assert "column=sha256, regex=^[0-9a-f]{64}$): speech/s1.wav (sha256=ABC)" in text
    assert "expect_column_min_to_be_between(column=n_speakers, min_value=4.0): observed n_speakers=3" in text


def test_usable_corpus_measures_the_accepted_set_against_the_minimums(tmp_path):
    check = dict(name="usable", report_path=tmp_path / "usable.json", id_column="corpus")
    frame = suites.usable_corpus_frame(_corpus())
    assert frame.iloc[0].to_dict() == {"corpus": "accepted set", "speakers": 3, "speech_files": 4,
                                       "speech_minutes": round(8 / 60, 3), "noise_files": 3, "noise_categories": 2,
                                       "noise_minutes": 0.25, "pairs": 0, "pair_minutes": 0.0}
    minimum = MinimumParams.parse({"speakers": 3, "noise_files": 3, "noise_minutes": None}, "download.minimum")
    assert validate(frame, suites.usable_corpus(minimum.set()), **check)["success"]
    with pytest.raises(DataCheckError, match=r"column=speakers, min_value=4.0\): accepted set \(speakers=3\)"):
        validate(frame, suites.usable_corpus(MinimumParams(speakers=4, noise_files=3).set()), **check)
    # the params schema's download.minimum keys are exactly the measures
    assert MinimumParams.keys() == list(suites.USABLE_MEASURES)
    with pytest.raises(ValueError, match=r"download.minimum: unknown key 'speaker'; known: noise_categories, "):
        MinimumParams.parse({"speaker": 4}, "download.minimum")


def test_audio_files_suite_on_real_files(tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    write_audio(tmp_path / "ok.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr)
    write_audio(tmp_path / "loud.wav", (1.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr)
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    stats = audio_file_stats(sorted(tmp_path.glob("*.wav")), root=tmp_path)
    with pytest.raises(DataCheckError) as info:
        validate(stats, suites.audio_files(sr, 0.5, None), name="clean", report_path=tmp_path / "c" / "r.json")
    text = str(info.value)
    assert "column=readable, value_set=[True]): junk.wav (readable=False, error=not readable as audio" in text
    assert "column=peak, max_value=1.0): loud.wav (peak=1.5)" in text
    assert "ok.wav" not in text
    assert validate(stats[stats.path == "ok.wav"], suites.audio_files(sr, 0.5, None), name="clean",
                    report_path=tmp_path / "c" / "r.json")["success"]


def test_feature_arrays(tmp_path):
    good = pd.DataFrame([array_stats("train.npy", np.zeros(100, np.float32)),
                         array_stats("val.npy", np.full(10, 0.5, np.float32))])
    assert validate(good, suites.feature_arrays(), name="features", report_path=tmp_path / "f.json",
                    id_column="name")["success"]
    nan = np.zeros(10, np.float32)
    nan[3] = np.nan
    bad = pd.DataFrame([array_stats("train.npy", nan), array_stats("val.npy", np.zeros((2, 5), np.float32)),
                        array_stats("test.npy", np.full(4, 2.0))])
    with pytest.raises(DataCheckError) as info:
        validate(bad, suites.feature_arrays(), name="features", report_path=tmp_path / "f.json", id_column="name")
    text = str(info.value)
    assert "column=all_finite, value_set=[True]): train.npy (all_finite=False)" in text
    assert "column=ndim, value_set=[1]): val.npy (ndim=2)" in text
    assert "column=peak, max_value=1.0): test.npy (peak=2.0)" in text
    assert "column=dtype, value_set=['float32']): test.npy (dtype=float64)" in text
