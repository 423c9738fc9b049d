import numpy as np
import pytest
import soundfile as sf

from hushkit.audio import AudioReadError, read_audio, resample, trim_silence, write_audio
from hushkit.io import atomic_path, write_json


def test_trim_silence_cuts_quiet_ends_only():
    rate = 16000
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(rate) / rate).astype(np.float32)
    padded = np.concatenate([np.zeros(rate // 2, np.float32), tone, np.zeros(rate // 2, np.float32)])
    trimmed = trim_silence(padded, rate)
    assert abs(len(trimmed) - rate) < 0.05 * rate


def test_resample_changes_length_by_ratio():
    x = np.random.default_rng(0).standard_normal(44100).astype(np.float32)
    assert abs(len(resample(x, 44100, 16000)) - 16000) <= 1


@pytest.mark.parametrize("content, reason", [(b"", "empty file"), (b"hello, not audio", "not readable as audio")])
def test_read_audio_names_file_and_reason(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioReadError, match=reason) as err:
        read_audio(path)
    assert str(path) in str(err.value)


def test_read_audio_missing_file(tmp_path):
    with pytest.raises(AudioReadError, match="no such file"):
        read_audio(tmp_path / "nope.wav")


def test_read_audio_keeps_channels_when_asked(tmp_path):
    path = tmp_path / "st.wav"
    sf.write(path, np.zeros((100, 2), np.float32), 8000)
    audio, rate = read_audio(path, always_2d=True)
    assert audio.shape == (100, 2) and rate == 8000


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"a": 1})
    assert target.read_text().strip().startswith("{")


def test_written_audio_is_byte_identical_across_runs(tmp_path):
    """Stage outputs are hashed by DVC: the same audio written twice (a second apart) must give the same bytes."""
    import time

    import numpy as np
    import soundfile as sf

    from hushkit.audio import write_audio

    audio = np.linspace(-0.5, 0.5, 4000, dtype=np.float32)
    write_audio(tmp_path / "a.wav", audio, 16000)
    time.sleep(1.1)
    write_audio(tmp_path / "b.wav", audio, 16000)
    write_audio(tmp_path / "c.wav", np.stack([audio, -audio], 1), 16000, subtype="PCM_16")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert np.array_equal(sf.read(tmp_path / "a.wav", dtype="float32")[0], audio)
    assert sf.info(tmp_path / "c.wav").channels == 2
