from pathlib import Path

import numpy as np
import pytest
from pystoi import stoi

from hushkit.audio import read_audio, resample, to_mono
from hushkit.baselines import NOISY, available_baselines, build_baseline
from hushkit.metrics import si_sdr

REAL_SMALL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-small"
NEURAL = ["rnnoise", "deepfilternet3"]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A real synthesized sentence at 16 kHz (espeak-ng), peak 0.5."""
    from hushkit.synthetic.espeak import synthesize

    audio, rate = synthesize("the quick brown fox jumps over the lazy dog", "en-us", rate=160, pitch=50)
    audio = resample(audio, rate, 16000)
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def add_noise(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise = noise[: len(clean)] * np.sqrt(np.mean(clean**2) / np.mean(noise[: len(clean)] ** 2) / 10 ** (snr_db / 10))
    mixture = clean + noise
    return (mixture / max(1.0, np.abs(mixture).max())).astype(np.float32)


def lag(estimate: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """The shift (samples) of `estimate` against `reference` with the largest cross-correlation, within ±max_lag."""
    lags = range(-max_lag, max_lag + 1)
    n = len(reference)
    scores = [np.dot(estimate[max(0, k): n + min(0, k)], reference[max(0, -k): n - max(0, k)]) for k in lags]
    return list(lags)[int(np.argmax(scores))]


def test_every_baseline_is_registered():
    assert available_baselines() == sorted([NOISY, "dsp", *NEURAL])


def test_unknown_baseline_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown baseline 'rnnoize'; known: \['deepfilternet3', 'dsp'"):
        build_baseline("rnnoize", 16000)


@pytest.mark.parametrize("name", available_baselines())
@pytest.mark.parametrize("rate, length", [(16000, 16037), (8000, 4001), (44100, 44101), (16000, 0)])
def test_output_keeps_length_and_is_finite(name, rate, length):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(length)).astype(np.float32)
    out = build_baseline(name, rate)(audio)
    assert out.shape == audio.shape and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("name", ["dsp", *NEURAL])
def test_output_is_aligned_with_the_clean_speech(name, speech):
    # The 48 kHz runtimes lag their input by 20 ms (RNNoise) and 30 ms (DeepFilterNet3): removed, the output's
    # cross-correlation with the clean speech peaks at lag 0.
    noise = np.random.default_rng(1).standard_normal(len(speech)).astype(np.float32)
    enhanced = build_baseline(name, 16000)(add_noise(speech, noise, 10.0))
    assert lag(enhanced, speech, max_lag=800) == 0


@pytest.mark.parametrize("name", ["dsp", *NEURAL])
def test_each_call_starts_from_a_fresh_state(name, speech):
    noise = np.random.default_rng(2).standard_normal(len(speech)).astype(np.float32)
    system = build_baseline(name, 16000)
    noisy = add_noise(speech, noise, 5.0)
    np.testing.assert_array_equal(system(noisy), system(noisy))


def test_dsp_removes_stationary_noise(speech):
    noise = np.random.default_rng(3).standard_normal(len(speech)).astype(np.float32)
    noisy = add_noise(speech, noise, 5.0)
    assert si_sdr(speech, build_baseline("dsp", 16000)(noisy)) > si_sdr(speech, noisy) + 2.0


@pytest.mark.skipif(not REAL_SMALL.is_dir(), reason="../shared/data/real-small is not beside the repo")
@pytest.mark.parametrize("name", NEURAL)
def test_neural_baselines_beat_the_noisy_input_on_real_recordings(name):
    # Real LibriSpeech speech and real noise clips, 5 dB: a misaligned output would lose SI-SDR and STOI.
    speech_files = sorted((REAL_SMALL / "speech").glob("*.flac"))[:4]
    noise_files = sorted((REAL_SMALL / "noise").glob("*.wav"))[:4]
    system = build_baseline(name, 16000)
    gains_sdr, gains_stoi = [], []
    for speech_file, noise_file in zip(speech_files, noise_files):
        clean, rate = read_audio(speech_file)
        clean = resample(to_mono(clean), rate, 16000)[: 16000 * 6]
        noise, noise_rate = read_audio(noise_file)
        noise = np.resize(resample(to_mono(noise), noise_rate, 16000), len(clean))
        noisy = add_noise(clean, noise, 5.0)
        enhanced = system(noisy)
        gains_sdr.append(si_sdr(clean, enhanced) - si_sdr(clean, noisy))
        gains_stoi.append(stoi(clean, enhanced, 16000) - stoi(clean, noisy, 16000))
    assert np.mean(gains_sdr) > 0 and np.mean(gains_stoi) > 0, (gains_sdr, gains_stoi)
