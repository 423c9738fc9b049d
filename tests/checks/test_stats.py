import numpy as np
import pytest
import soundfile as sf

from hushkit.checks.stats import AUDIO_STATS_COLUMNS, SILENCE_DB, array_stats, audio_file_stats
from hushkit.audio import write_audio

SR = 16000


@pytest.fixture
def files(tmp_path):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_audio(tmp_path / "good.wav", tone, SR, subtype="PCM_16")
    with_nan = tone.copy()
    with_nan[100:103] = np.nan
    with_nan[200] = np.inf
    write_audio(tmp_path / "nan.wav", with_nan, SR)
    write_audio(tmp_path / "silent.wav", np.zeros(SR // 2, np.float32), SR)
    (tmp_path / "text.wav").write_text("this is not audio\n")
    (tmp_path / "empty.wav").write_bytes(b"")
    write_audio(tmp_path / "stereo.wav", np.stack([tone, 0.5 * tone], axis=1), 8000)
    names = ["good", "nan", "silent", "text", "empty", "stereo", "missing"]
    return [tmp_path / f"{n}.wav" for n in names]


def test_audio_file_stats_rows(files, tmp_path):
    df = audio_file_stats(files, root=tmp_path)
    assert list(df.columns) == AUDIO_STATS_COLUMNS
    rows = df.set_index("path").to_dict("index")
    assert list(rows) == ["good.wav", "nan.wav", "silent.wav", "text.wav", "empty.wav", "stereo.wav", "missing.wav"]

    good = rows["good.wav"]
    assert good["readable"] and good["error"] == "" and good["all_finite"] and good["nonfinite"] == 0
    assert (good["sample_rate"], good["channels"], good["frames"]) == (SR, 1, SR)
    assert good["duration"] == pytest.approx(1.0)
    assert good["peak"] == pytest.approx(0.5, abs=1e-3)
    assert good["rms_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)

    nan = rows["nan.wav"]
    assert nan["readable"] and not nan["all_finite"] and nan["nonfinite"] == 4
    assert np.isfinite(nan["peak"]) and np.isfinite(nan["rms_db"]) and nan["peak"] == pytest.approx(0.5, abs=1e-3)

    silent = rows["silent.wav"]
    assert silent["readable"] and silent["all_finite"]
    assert silent["peak"] == 0.0 and silent["rms_db"] == SILENCE_DB and silent["duration"] == pytest.approx(0.5)

    for name, reason in [("text.wav", "not readable as audio"), ("empty.wav", "empty file"),
                         ("missing.wav", "no such file")]:
        row = rows[name]
        assert not row["readable"] and reason in row["error"], (name, row["error"])
        assert str(tmp_path) not in row["error"]  # the path is in the `path` column already
        assert (row["sample_rate"], row["channels"], row["frames"], row["duration"]) == (0, 0, 0, 0.0)
        assert not row["all_finite"] and row["rms_db"] == SILENCE_DB

    stereo = rows["stereo.wav"]
    assert stereo["readable"] and stereo["channels"] == 2 and stereo["sample_rate"] == 8000
    assert stereo["duration"] == pytest.approx(SR / 8000)


def test_paths_without_root_are_kept_as_given(files):
    df = audio_file_stats(files[:1])
    assert df["path"].tolist() == [files[0].as_posix()]


def test_no_paths_gives_an_empty_frame_with_columns():
    df = audio_file_stats([])
    assert len(df) == 0 and list(df.columns) == AUDIO_STATS_COLUMNS


def test_pcm_file_is_read_as_float(tmp_path):
    sf.write(tmp_path / "full.wav", np.array([0, 32767, -32768], np.int16), SR, subtype="PCM_16")
    row = audio_file_stats([tmp_path / "full.wav"]).iloc[0]
    assert row["peak"] == pytest.approx(1.0)


def test_array_stats():
    a = np.array([0.5, -0.75, np.nan, np.inf], np.float32)
    s = array_stats("train.npy", a)
    assert s == {"name": "train.npy", "shape": "(4,)", "dtype": "float32", "ndim": 1, "size": 4, "nonfinite": 2,
                 "all_finite": False, "min": -0.75, "max": 0.5, "peak": 0.75}
    s2 = array_stats("m", np.zeros((2, 3)))
    assert (s2["shape"], s2["ndim"], s2["all_finite"], s2["peak"]) == ("(2, 3)", 2, True, 0.0)
    empty = array_stats("e", np.zeros(0, np.float32))
    assert empty["size"] == 0 and empty["peak"] == 0.0 and np.isnan(empty["min"])
