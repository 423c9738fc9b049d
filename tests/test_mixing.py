import numpy as np
import pytest

from hushkit.audio import rms_db
from hushkit.mixing import PEAK_LIMIT, at_level, mix_at_snr, noise_segment, snr_db

RATE = 16000


def speech_like(rng, seconds=2.0):
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)  # bursts and pauses, like syllables
    return (0.3 * envelope * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("target", [0.0, 5.0, 17.5, 40.0])
def test_mixture_hits_target_snr_and_level(target):
    rng = np.random.default_rng(0)
    clean = speech_like(rng)
    noise = rng.standard_normal(clean.size).astype(np.float32)
    mix = mix_at_snr(clean, noise, target, -25.0, RATE)
    assert abs(mix.realized_snr_db - target) < 0.05
    assert abs(snr_db(mix.clean, mix.noisy - mix.clean, RATE) - target) < 0.05
    assert abs(mix.level_dbfs - (-25.0)) < 0.05
    assert mix.clean.dtype == mix.noisy.dtype == np.float32


def test_loud_mixture_is_rescaled_not_clipped():
    rng = np.random.default_rng(1)
    clean = speech_like(rng)
    noise = rng.standard_normal(clean.size).astype(np.float32)
    mix = mix_at_snr(clean, noise, 0.0, 0.0, RATE)  # 0 dBFS RMS would clip without the rescale
    assert np.max(np.abs(mix.noisy)) <= PEAK_LIMIT + 1e-6
    assert np.max(np.abs(mix.clean)) <= PEAK_LIMIT + 1e-6
    assert abs(mix.realized_snr_db) < 0.05


def test_noise_segment_loops_short_noise_and_is_seeded():
    noise = np.arange(100, dtype=np.float32)
    seg = noise_segment(noise, 250, np.random.default_rng(3))
    assert seg.shape == (250,)
    assert np.array_equal(seg, noise_segment(noise, 250, np.random.default_rng(3)))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="lengths differ"):
        mix_at_snr(np.ones(10, np.float32), np.ones(9, np.float32), 0.0, -20.0, RATE)


def test_at_level_sets_the_rms_level_unless_the_peak_would_pass_the_limit():
    noise = np.random.default_rng(2).standard_normal(RATE).astype(np.float32)
    quiet = at_level(noise, -30.0)
    assert quiet.dtype == np.float32 and rms_db(quiet) == pytest.approx(-30.0, abs=1e-3)
    loud = at_level(noise, 0.0)  # a Gaussian's peak is several times its RMS: the peak limit wins
    assert np.max(np.abs(loud)) == pytest.approx(PEAK_LIMIT, abs=1e-6) and rms_db(loud) < -6.0
