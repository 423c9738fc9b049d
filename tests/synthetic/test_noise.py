"""Procedural noise: level, length and sanity per category, and categories that really differ."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import signal

from hushkit.audio import frame_energies_db, peak, rms_db
from hushkit.synthetic.noise import CATEGORIES, generate_noise

SR = 16000
EXPECTED = {"white", "pink", "brown", "babble", "hum", "fan", "traffic", "keyboard", "rain", "music"}


def _noise(category: str, seed: int, seconds: float = 2.0) -> np.ndarray:
    return generate_noise(category, np.random.default_rng(seed), seconds, SR)


@pytest.fixture(scope="module")
def instances() -> dict[str, np.ndarray]:
    return {c: _noise(c, 11) for c in CATEGORIES}


def _psd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return signal.welch(x, SR, nperseg=4096)


def _low_fraction(x: np.ndarray, cutoff: float = 500.0) -> float:
    f, p = _psd(x)
    return float(p[f < cutoff].sum() / p.sum())


def _band_profile(x: np.ndarray) -> np.ndarray:
    """Share of power (dB) in 16 log-spaced bands from 30 Hz to 7.9 kHz."""
    f, p = signal.welch(x, SR, nperseg=2048)
    edges = np.geomspace(30, 7900, 17)
    bands = np.array([p[(f >= lo) & (f < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    return 10 * np.log10(bands / bands.sum() + 1e-12)


def test_at_least_the_ten_categories() -> None:
    assert EXPECTED <= set(CATEGORIES)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_instance_is_sane(category: str) -> None:
    x = _noise(category, 1, seconds=1.5)
    assert x.dtype == np.float32
    assert x.shape == (int(1.5 * SR),)
    assert np.all(np.isfinite(x))
    assert peak(x) <= 0.99
    assert -30.05 <= rms_db(x) <= -19.95
    y = _noise(category, 2, seconds=1.5)
    assert not np.allclose(x, y), "two seeds gave the same instance"
    np.testing.assert_array_equal(x, _noise(category, 1, seconds=1.5))  # same seed, same samples


def test_levels_vary_across_instances() -> None:
    levels = [rms_db(_noise("pink", seed, 0.5)) for seed in range(12)]
    assert max(levels) - min(levels) > 3.0


def test_pink_and_brown_tilt(instances: dict[str, np.ndarray]) -> None:
    white, pink, brown = (_low_fraction(instances[c]) for c in ("white", "pink", "brown"))
    assert white < 0.1
    assert pink > 2 * white
    assert brown > pink


def test_hum_peaks_at_mains_harmonic(instances: dict[str, np.ndarray]) -> None:
    f, p = _psd(instances["hum"])
    top = f[np.argmax(p)]
    resolution = SR / 4096
    assert any(
        abs(top - k * mains) <= resolution + 0.005 * k * mains for mains in (50.0, 60.0) for k in range(1, 11)
    ), f"hum spectrum peaks at {top:.1f} Hz"


def test_tonal_categories_are_tonal(instances: dict[str, np.ndarray]) -> None:
    def flatness(x: np.ndarray) -> float:
        _, p = _psd(x)
        p = p[1:] + 1e-20
        return float(np.exp(np.mean(np.log(p))) / np.mean(p))

    noise_like = flatness(instances["white"])
    assert flatness(instances["hum"]) < 0.05 * noise_like
    assert flatness(instances["music"]) < 0.05 * noise_like


def test_impulsive_and_fluctuating_categories(instances: dict[str, np.ndarray]) -> None:
    def kurtosis(x: np.ndarray) -> float:
        x = x - x.mean()
        return float(np.mean(x**4) / np.mean(x**2) ** 2)

    def spread(x: np.ndarray) -> float:
        energy = frame_energies_db(x, 400, 160)
        return float(np.percentile(energy, 95) - np.percentile(energy, 5))

    assert kurtosis(instances["keyboard"]) > 10.0
    assert kurtosis(instances["rain"]) > kurtosis(instances["white"]) + 1.0
    for fluctuating in ("keyboard", "babble", "music"):
        assert spread(instances[fluctuating]) > 2 * spread(instances["white"]), fluctuating


def test_categories_differ_spectrally(instances: dict[str, np.ndarray]) -> None:
    profiles = {c: _band_profile(x) for c, x in instances.items()}
    for a, b in itertools.combinations(sorted(profiles), 2):
        distance = float(np.sqrt(np.mean((profiles[a] - profiles[b]) ** 2)))
        assert distance > 2.0, f"{a} and {b} have nearly the same spectrum ({distance:.1f} dB)"


def test_unknown_category() -> None:
    with pytest.raises(ValueError, match=r"'thunder'.*white.*music"):
        generate_noise("thunder", np.random.default_rng(0), 1.0, SR)
