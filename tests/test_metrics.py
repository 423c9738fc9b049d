import math

import numpy as np
import pytest

from hushkit.metrics import pesq_score, score_pair, score_pairs, si_sdr

RATE = 16000


def voiced(seconds=3.0, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.1 * envelope * harmonics).astype(np.float32)


def test_si_sdr_is_scale_invariant_and_ranks_noise():
    rng = np.random.default_rng(0)
    clean = voiced()
    noise = rng.standard_normal(clean.size).astype(np.float32) * 0.01
    assert si_sdr(clean, 3.0 * clean) > 80
    assert si_sdr(clean, clean + noise) > si_sdr(clean, clean + 10 * noise)
    assert si_sdr(clean, clean + 10 * noise) == pytest.approx(si_sdr(clean, 0.5 * (clean + 10 * noise)), abs=1e-6)


def test_cleaner_signal_scores_higher_on_every_metric():
    rng = np.random.default_rng(1)
    clean = voiced()
    noise = rng.standard_normal(clean.size).astype(np.float32) * 0.05
    good, bad = (score_pair(clean, clean + 0.1 * noise, RATE, with_dnsmos=True),
                 score_pair(clean, clean + noise, RATE, with_dnsmos=True))
    for metric in good:
        assert good[metric] > bad[metric], metric


def test_pesq_rejects_unsupported_rate_and_nans_silence():
    with pytest.raises(ValueError, match="8000 or 16000"):
        pesq_score(voiced(rate=22050), voiced(rate=22050), 22050)
    assert math.isnan(pesq_score(np.zeros(RATE * 2, np.float32), np.zeros(RATE * 2, np.float32), RATE))


def test_parallel_scoring_matches_serial():
    rng = np.random.default_rng(2)
    clean = voiced(2.0)
    jobs = [(clean, clean + s * rng.standard_normal(clean.size).astype(np.float32), RATE) for s in (0.01, 0.03, 0.1, 0.2)]
    parallel, serial = score_pairs(jobs, workers=2), score_pairs(jobs, workers=1)
    for a, b in zip(parallel, serial):
        assert a == pytest.approx(b, rel=1e-9, nan_ok=True)  # BLAS threading may differ in the last bits


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        score_pair(np.zeros(10), np.zeros(11), RATE)


def test_dnsmos_matches_the_reference_implementation():
    """Our single-threaded DNSMOS equals speechmos' (Microsoft's procedure) on a short and a long clip."""
    from speechmos import dnsmos as reference

    from hushkit.metrics import dnsmos

    rng = np.random.default_rng(3)
    for seconds in (2.5, 11.0):  # doubled to 10 s (one window) / three 9.01-s windows
        audio = np.clip(voiced(seconds) + 0.02 * rng.standard_normal(int(seconds * RATE)), -1, 1).astype(np.float32)
        ours, theirs = dnsmos(audio, RATE), reference.run(audio, sr=RATE)
        for key, ref_key in (("dnsmos_sig", "sig_mos"), ("dnsmos_bak", "bak_mos"), ("dnsmos_ovr", "ovrl_mos")):
            assert ours[key] == pytest.approx(float(theirs[ref_key]), abs=1e-4), (seconds, key)


def test_dnsmos_hears_the_noise_and_takes_any_rate():
    from hushkit.audio import resample
    from hushkit.metrics import dnsmos

    clean = voiced(3.0)
    noisy = clean + 0.1 * np.random.default_rng(4).standard_normal(clean.size).astype(np.float32)
    assert dnsmos(clean, RATE)["dnsmos_bak"] > dnsmos(noisy, RATE)["dnsmos_bak"] + 0.1
    at_48k = dnsmos(resample(clean, RATE, 48000), 48000)
    assert at_48k["dnsmos_ovr"] == pytest.approx(dnsmos(clean, RATE)["dnsmos_ovr"], abs=0.05)
    assert math.isnan(dnsmos(np.full(100, np.nan, np.float32), RATE)["dnsmos_ovr"])


def test_dnsmos_is_scored_only_when_asked():
    clean = voiced(2.0)
    assert math.isnan(score_pair(clean, clean, RATE)["dnsmos_ovr"])
    assert 1.0 <= score_pair(clean, clean, RATE, with_dnsmos=True)["dnsmos_ovr"] <= 5.0
