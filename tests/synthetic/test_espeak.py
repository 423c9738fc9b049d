"""espeak-ng through ctypes: speech comes out, deterministically, and bad voices fail clearly."""
from __future__ import annotations

import numpy as np
import pytest

from hushkit.audio import frame_energies_db, rms_db
from hushkit.synthetic.espeak import EspeakError, Synthesizer

EN_TEXT = "The quiet farmer opens the old wooden door."
RU_TEXT = "Маленькая кошка видит большой зелёный дом."


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


def _speech_like(audio: np.ndarray, sr: int) -> None:
    assert audio.dtype == np.float32
    assert np.all(np.isfinite(audio))
    assert np.max(np.abs(audio)) <= 1.0
    assert rms_db(audio) > -35.0, "audio is (nearly) silent"
    # speech has syllables and pauses: a wide spread of frame energies, unlike stationary noise
    energy = frame_energies_db(audio, int(0.025 * sr), int(0.010 * sr))
    assert np.percentile(energy, 95) - np.percentile(energy, 10) > 10.0


@pytest.mark.parametrize(
    ("text", "voice"),
    [(EN_TEXT, "en-us+m3"), (EN_TEXT, "en+f2"), (RU_TEXT, "ru+m1"), (RU_TEXT, "ru+f4")],
)
def test_sentence_synthesizes_to_speech(synth: Synthesizer, text: str, voice: str) -> None:
    audio, sr = synth.synthesize(text, voice, rate=160, pitch=50)
    assert sr == 22050
    assert audio.ndim == 1
    seconds = audio.size / sr
    assert 1.2 < seconds < 5.0, f"{seconds:.2f} s for an 8-word sentence"
    _speech_like(audio, sr)


def test_rate_changes_duration(synth: Synthesizer) -> None:
    slow, sr = synth.synthesize(EN_TEXT, "en-us", rate=120, pitch=50)
    fast, _ = synth.synthesize(EN_TEXT, "en-us", rate=240, pitch=50)
    assert fast.size < 0.75 * slow.size


def test_same_call_is_identical_whatever_came_before(synth: Synthesizer) -> None:
    kwargs = dict(rate=170, pitch=40, pitch_range=60)
    first, sr1 = synth.synthesize(RU_TEXT, "ru+f2", **kwargs)
    synth.synthesize(EN_TEXT, "en+m7", rate=190, pitch=70)  # engine state must not leak across calls
    second, sr2 = synth.synthesize(RU_TEXT, "ru+f2", **kwargs)
    assert sr1 == sr2
    np.testing.assert_array_equal(first, second)
    other, _ = synth.synthesize(RU_TEXT, "ru+f2", rate=170, pitch=60, pitch_range=60)
    assert not np.array_equal(first[: other.size], other[: first.size])


def test_unknown_voice_raises_clear_error(synth: Synthesizer) -> None:
    with pytest.raises(EspeakError, match="xx-nope"):
        synth.synthesize("hello", "xx-nope", rate=150, pitch=50)
    assert issubclass(EspeakError, RuntimeError)


def test_unknown_variant_raises_clear_error(synth: Synthesizer) -> None:
    # espeak-ng itself silently ignores an unknown variant; the wrapper must not
    with pytest.raises(EspeakError, match="variant 'zz'"):
        synth.synthesize("hello", "en-us+zz", rate=150, pitch=50)


def test_bad_arguments(synth: Synthesizer) -> None:
    with pytest.raises(ValueError, match="empty"):
        synth.synthesize("  ", "en-us", rate=150, pitch=50)
    with pytest.raises(ValueError, match="rate"):
        synth.synthesize("hello", "en-us", rate=10, pitch=50)
