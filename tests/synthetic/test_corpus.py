"""The embedded corpus builder: deterministic files and manifest, durations in bounds, distinct speakers."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hushkit.synthetic.speakers import make_speakers
from hushkit.synthetic.corpus import MANIFEST_COLUMNS, build_synthetic
from hushkit.synthetic.words import make_sentence
from hushkit.io import sha256_file

TINY = {
    "source": "synthetic",
    "sample_rate": 16000,
    "seed": 123,
    "speech": {
        "languages": ["en", "ru"],
        "speakers_per_language": 2,
        "sentences_per_speaker": 2,
        "min_seconds": 1.0,
        "max_seconds": 4.0,
    },
    "noise": {"categories": ["white", "hum", "babble"], "instances_per_category": 2, "seconds": 1.0},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, Path, pd.DataFrame]:
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    return a, build_synthetic(TINY, a, show_progress=False), b, build_synthetic(TINY, b)


def test_two_builds_are_identical(built) -> None:
    dir_a, df_a, dir_b, df_b = built
    assert df_a.to_csv(index=False) == df_b.to_csv(index=False)
    for rel in df_a["path"]:
        assert sha256_file(dir_a / rel) == sha256_file(dir_b / rel)


def test_manifest_columns_and_rows(built) -> None:
    out, df, _, _ = built
    assert list(df.columns) == MANIFEST_COLUMNS
    assert len(df) == 2 * 2 * 2 + 3 * 2
    assert list(df["path"]) == sorted(df["path"])
    assert set(df["kind"]) == {"speech", "noise"}
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert on_disk == list(df["path"])
    for row in df.itertuples():
        info = sf.info(out / row.path)
        assert info.samplerate == row.sample_rate == 16000
        assert info.subtype == "PCM_16"
        assert info.frames / info.samplerate == pytest.approx(row.duration)
        assert sha256_file(out / row.path) == row.sha256


def test_speech_rows(built) -> None:
    out, df, _, _ = built
    speech = df[df["kind"] == "speech"]
    assert len(speech) == 8
    assert speech["duration"].between(1.0, 4.0).all()
    assert set(speech["language"]) == {"en", "ru"}
    assert (speech["category"] == "").all()
    assert (speech["source"] == "synthetic/espeak-ng").all()
    assert (speech["license"] == "CC0-1.0 (generated; espeak-ng engine GPL-3.0)").all()
    for row in speech.itertuples():
        assert row.path == f"speech/{row.speaker}/{row.speaker}_{int(row.path[-7:-4]):03d}.wav"
        assert row.speaker.startswith(f"{row.language}-spk")
        assert row.text and row.voice.startswith("en" if row.language == "en" else "ru")
    ru_text = " ".join(speech.loc[speech["language"] == "ru", "text"])
    assert any("\u0400" <= ch <= "\u04ff" for ch in ru_text)
    audio, sr = sf.read(out / speech["path"].iloc[0])
    assert np.sqrt(np.mean(audio**2)) > 0.01


def test_noise_rows(built) -> None:
    _, df, _, _ = built
    noise = df[df["kind"] == "noise"]
    assert sorted(noise["category"].unique()) == ["babble", "hum", "white"]
    assert (noise["duration"] == 1.0).all()
    assert (noise[["speaker", "language", "text", "voice"]] == "").all().all()
    assert (noise["source"] == "synthetic/procedural").all()
    assert (noise["license"] == "CC0-1.0 (generated)").all()
    assert set(noise["path"]) == {f"noise/{c}/{c}_{j:02d}.wav" for c in ("white", "hum", "babble") for j in (0, 1)}


def test_speakers_distinct() -> None:
    speakers = make_speakers(["en", "ru"], 12, np.random.default_rng(2026))
    assert len({s.id for s in speakers}) == 24
    assert len({(s.voice, s.pitch, s.rate) for s in speakers}) == 24
    for language in ("en", "ru"):
        genders = {s.gender for s in speakers if s.language == language}
        assert genders == {"male", "female"}
    assert all(130 <= s.rate <= 200 and 0 <= s.pitch <= 99 for s in speakers)


def test_more_speakers_keep_the_existing_ones() -> None:
    few = make_speakers(["en", "ru"], 3, np.random.default_rng(5))
    more = make_speakers(["en", "ru"], 5, np.random.default_rng(5))
    assert few[:3] == more[:3] and few[3:] == more[5:8]


def test_changing_a_count_does_not_reshuffle(tmp_path: Path, built) -> None:
    _, df, _, _ = built
    params = copy.deepcopy(TINY)
    params["noise"] = {"categories": ["white"], "instances_per_category": 1, "seconds": 1.0}
    params["speech"]["sentences_per_speaker"] = 1
    small = build_synthetic(params, tmp_path, show_progress=False)
    merged = small.merge(df, on="path", suffixes=("", "_full"))
    assert len(merged) == len(small)
    assert (merged["sha256"] == merged["sha256_full"]).all()


def test_make_sentence_word_counts() -> None:
    rng = np.random.default_rng(0)
    for language in ("en", "ru"):
        for n in range(1, 30):
            assert len(make_sentence(rng, language, n).split()) == n
    with pytest.raises(ValueError, match="unknown language"):
        make_sentence(rng, "xx", 5)


def test_bad_category_is_rejected(tmp_path: Path) -> None:
    params = copy.deepcopy(TINY)
    params["noise"]["categories"] = ["white", "thunder"]
    with pytest.raises(ValueError, match="thunder"):
        build_synthetic(params, tmp_path, show_progress=False)
