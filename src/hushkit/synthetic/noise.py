"""Procedural noise: twelve categories, each a generator f(rng, n_samples, sample_rate) -> float32.

Every generator draws its own parameters (filter cut-offs, rates, levels, tones) from `rng`, so two
instances of a category differ in character, not just in sample values. `generate_noise` brings any
instance to a random level between -30 and -20 dBFS RMS with its peak at most 0.99.
Only numpy and scipy.signal, vectorised; babble uses espeak-ng talkers in non-corpus languages.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import signal

from hushkit.audio import resample

NoiseGenerator = Callable[[np.random.Generator, int, int], np.ndarray]

RMS_DB_RANGE = (-30.0, -20.0)
MAX_PEAK = 0.99
_EPS = 1e-12


# ------------------------------------------------------------------------------------------- helpers
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + _EPS))


def _unit(x: np.ndarray) -> np.ndarray:
    """Scale to unit RMS (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return x / _rms(x)


def _colored(rng: np.random.Generator, n: int, sr: int, exponent: float, f_low: float = 0.0) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), flat below f_low."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    corner = max(f_low, sr / n)  # no infinite gain at DC
    spectrum *= np.maximum(freqs, corner) ** (-exponent / 2.0)
    spectrum[0] = 0.0
    return _unit(np.fft.irfft(spectrum, n))


def _sos(kind: str, cutoff, sr: int, order: int = 4) -> np.ndarray:
    nyq = sr / 2.0
    if np.ndim(cutoff):
        low, high = cutoff
        cutoff = (max(low, 1.0), min(high, 0.95 * nyq))
    else:
        cutoff = min(float(cutoff), 0.95 * nyq)
    return signal.butter(order, cutoff, btype=kind, fs=sr, output="sos")


def _filt(x: np.ndarray, kind: str, cutoff, sr: int, order: int = 4) -> np.ndarray:
    return signal.sosfilt(_sos(kind, cutoff, sr, order), x)


def _slow_noise(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """Smooth random curve (unit RMS, zero mean) varying on the time scale of 1/rate_hz seconds."""
    n_knots = max(4, int(np.ceil(n / sr * rate_hz)) + 3)
    knots = rng.standard_normal(n_knots)
    t = np.linspace(0.0, n_knots - 3, n)
    curve = np.interp(t, np.arange(n_knots), knots)
    # a moving average (via cumulative sums) rounds off the corners of the linear pieces
    width = int(sr / rate_hz / 2)
    if 1 < width < n:
        padded = np.concatenate([np.full(width, curve[0]), curve, np.full(width, curve[-1])])
        csum = np.concatenate([[0.0], np.cumsum(padded)])
        start = width - width // 2
        curve = (csum[start + width:start + width + n] - csum[start:start + n]) / width
    curve -= curve.mean()
    return curve / (np.std(curve) + _EPS)


def _db(lo: float, hi: float, rng: np.random.Generator) -> float:
    return float(10.0 ** (rng.uniform(lo, hi) / 20.0))


# ------------------------------------------------------------------------------------------ categories
def white(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Flat-spectrum Gaussian noise with a mild random level wobble."""
    x = rng.standard_normal(n)
    depth = rng.uniform(0.0, 0.15)
    return x * (1.0 + depth * np.tanh(_slow_noise(rng, n, sr, rng.uniform(0.2, 1.0))))


def pink(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """1/f noise, slope drawn around -3 dB/octave."""
    return _colored(rng, n, sr, exponent=rng.uniform(0.85, 1.15), f_low=rng.uniform(5.0, 20.0))


def brown(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """1/f^2 (Brownian) noise, slope around -6 dB/octave, flattened below a few tens of Hz."""
    return _colored(rng, n, sr, exponent=rng.uniform(1.8, 2.2), f_low=rng.uniform(15.0, 40.0))


def hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with random harmonics, a slow frequency drift and a faint noise floor."""
    f0 = float(rng.choice([50.0, 60.0]))
    n_harm = int(rng.integers(4, 11))
    k = np.arange(1, n_harm + 1)
    # fundamental strong; odd harmonics (transformer/rectifier buzz) often stronger than even ones
    amps = rng.uniform(0.1, 1.0, n_harm) * k ** (-rng.uniform(0.3, 1.2))
    amps[0] = rng.uniform(0.8, 1.2) * amps.max()
    amps[1::2] *= rng.uniform(0.2, 1.0)
    drift = 1.0 + rng.uniform(0.0005, 0.002) * np.tanh(_slow_noise(rng, n, sr, rng.uniform(0.05, 0.3)))
    phase = 2 * np.pi * np.cumsum(f0 * drift) / sr
    phases = rng.uniform(0, 2 * np.pi, n_harm)
    keep = k * f0 < 0.45 * sr
    tones = (amps[keep, None] * np.sin(k[keep, None] * phase[None, :] + phases[keep, None])).sum(axis=0)
    floor = _db(-45, -30, rng) * _colored(rng, n, sr, 1.0)
    return _unit(tones) + floor


def fan(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """HVAC/fan: band-limited airflow noise, a blade-pass tone with harmonics, slow modulation."""
    low = rng.uniform(60.0, 300.0)
    high = rng.uniform(1200.0, 5000.0)
    air = _unit(_filt(_colored(rng, n, sr, rng.uniform(0.3, 1.0)), "bandpass", (low, high), sr, order=2))
    blade = rng.uniform(40.0, 220.0)
    t = np.arange(n) / sr
    wobble = 1.0 + 0.003 * _slow_noise(rng, n, sr, 0.5)
    phase = 2 * np.pi * blade * np.cumsum(wobble) / sr
    harm = np.arange(1, int(rng.integers(2, 5)) + 1)
    tone = (rng.uniform(0.2, 1.0, harm.size)[:, None] / harm[:, None] * np.sin(harm[:, None] * phase)).sum(axis=0)
    mod_rate = rng.uniform(0.1, 1.5)
    mod = 1.0 + rng.uniform(0.03, 0.2) * np.sin(2 * np.pi * mod_rate * t + rng.uniform(0, 2 * np.pi))
    return mod * (air + _db(-18, -6, rng) * _unit(tone))


def traffic(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Distant traffic: low-passed brownish rumble plus swells of passing vehicles with tyre hiss."""
    rumble = _unit(_filt(_colored(rng, n, sr, rng.uniform(1.4, 2.0), f_low=20.0), "lowpass", rng.uniform(200.0, 600.0), sr))
    seconds = n / sr
    n_cars = max(1, int(rng.poisson(seconds * rng.uniform(0.2, 0.8))))
    centres = rng.uniform(-0.1 * seconds, 1.1 * seconds, n_cars)
    widths = rng.uniform(0.8, 3.0, n_cars)
    gains = rng.uniform(0.5, 2.5, n_cars)
    t = np.arange(n) / sr
    envelope = np.zeros(n)
    for c, w, g in zip(centres, widths, gains):  # a handful of vehicles: loop over cars, not samples
        envelope += g * np.exp(-0.5 * ((t - c) / w) ** 2)
    engine = _unit(_filt(_colored(rng, n, sr, 1.0), "bandpass", (rng.uniform(60, 150), rng.uniform(800, 2500)), sr, order=2))
    # tyre/road noise: a broad bump around 1 kHz
    hiss = _unit(_filt(rng.standard_normal(n), "bandpass", (rng.uniform(500, 800), rng.uniform(1200, 2000)), sr, order=2))
    passing = envelope * (engine + _db(-10, -2, rng) * hiss)
    # distance and air absorption: little left above a few kHz
    return _filt(_db(-6, 0, rng) * rumble + passing, "lowpass", rng.uniform(2000.0, 3500.0), sr, order=4)


def _event_train(rng: np.random.Generator, n: int, times: np.ndarray, gains: np.ndarray) -> np.ndarray:
    train = np.zeros(n)
    idx = np.clip((times).astype(np.int64), 0, n - 1)
    np.add.at(train, idx, gains)
    return train


def keyboard(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Typing: short decaying clicks at irregular intervals (bursts and pauses), over a faint room floor."""
    mean_gap = rng.uniform(0.08, 0.25)  # seconds between keystrokes while typing
    seconds = n / sr
    gaps = rng.gamma(shape=rng.uniform(1.5, 4.0), scale=mean_gap / 2.5, size=int(seconds / 0.03) + 8)
    pauses = rng.random(gaps.size) < rng.uniform(0.02, 0.08)
    gaps = gaps + pauses * rng.uniform(0.4, 1.5, gaps.size)  # thinking pauses
    times = np.cumsum(gaps) - rng.uniform(0, 0.5)
    times = times[(times >= 0) & (times < seconds)] * sr
    out = np.zeros(n)
    n_kinds = 4  # a few key "types" (letters, space bar, ...), each its own click shape
    kind = rng.integers(0, n_kinds, times.size)
    for k in range(n_kinds):
        length = int(sr * rng.uniform(0.006, 0.025))
        tk = np.arange(length) / sr
        decay = rng.uniform(150.0, 600.0)
        ring = rng.uniform(1500.0, min(6000.0, 0.4 * sr))
        kernel = np.exp(-decay * tk) * (rng.standard_normal(length) + 0.6 * np.sin(2 * np.pi * ring * tk))
        # the release of the key: a weaker second click a few tens of ms later
        release = int(sr * rng.uniform(0.03, 0.09))
        kernel = np.concatenate([kernel, np.zeros(release), rng.uniform(0.2, 0.5) * kernel])
        sel = kind == k
        train = _event_train(rng, n, times[sel], rng.uniform(0.4, 1.0, sel.sum()))
        out += signal.fftconvolve(train, kernel)[:n]
    out = _filt(out, "bandpass", (rng.uniform(200, 800), rng.uniform(5000, 7800)), sr, order=2)
    return _unit(out) + _db(-40, -28, rng) * _colored(rng, n, sr, 1.5)


def rain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Rain: dense random droplet impulses (filtered, decaying) over a soft broadband bed."""
    seconds = n / sr
    rate = rng.uniform(300.0, 2500.0)  # drops per second
    count = int(rng.poisson(rate * seconds))
    times = rng.uniform(0, n, count)
    gains = rng.lognormal(0.0, rng.uniform(0.5, 1.0), count) * rng.choice([-1.0, 1.0], count)
    train = _event_train(rng, n, times, gains)
    length = int(sr * 0.004)
    tk = np.arange(length) / sr
    drop = np.exp(-rng.uniform(800.0, 2500.0) * tk) * np.sin(2 * np.pi * rng.uniform(1500, min(5000, 0.4 * sr)) * tk)
    drops = _unit(signal.fftconvolve(train, drop)[:n])
    bed = _unit(_filt(_colored(rng, n, sr, rng.uniform(0.0, 0.8)), "bandpass", (rng.uniform(300, 1000), rng.uniform(4000, 7800)), sr, order=2))
    mix = drops + _db(-6, 3, rng) * bed
    return _filt(mix, "lowpass", rng.uniform(3500.0, 7800.0), sr, order=2)


def music(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Tonal music: chords and melody notes of harmonic tones with attack/decay envelopes, random key and tempo."""
    seconds = n / sr
    beat = 60.0 / rng.uniform(60.0, 150.0)
    root = int(rng.integers(45, 57))  # MIDI note of the key's root
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.6 else np.array([0, 2, 3, 5, 7, 8, 10])
    n_harm = int(rng.integers(3, 9))
    brightness = rng.uniform(0.6, 1.8)  # harmonic roll-off exponent
    harm_amp = np.arange(1, n_harm + 1, dtype=float) ** (-brightness)
    decay = rng.uniform(1.0, 6.0)
    out = np.zeros(n + int(sr * 4 * beat))
    events: list[tuple[float, float, list[int], float]] = []
    t = -rng.uniform(0, beat)
    while t < seconds:  # chords on the bar, melody notes in between
        degree = int(rng.integers(0, 7))
        chord = [root + scale[(degree + s) % 7] + 12 * ((degree + s) // 7) for s in (0, 2, 4)][: int(rng.integers(2, 4))]
        events.append((t, 4 * beat, chord, 0.6))
        for b in range(4):
            if rng.random() < 0.7:
                note = root + 12 + scale[int(rng.integers(0, 7))]
                events.append((t + b * beat, beat * rng.choice([0.5, 1.0]), [int(note)], 1.0))
        t += 4 * beat
    for start_s, dur_s, notes, gain in events:
        start = int(round(start_s * sr))
        length = int(dur_s * sr)
        tt = np.arange(length) / sr
        attack = np.minimum(1.0, tt / 0.01)
        release = np.minimum(1.0, (dur_s - tt) / 0.03).clip(0, 1)
        env = attack * np.exp(-decay * tt) * release
        freqs = 440.0 * 2.0 ** ((np.array(notes, dtype=float) - 69) / 12.0)
        partials = (freqs[:, None] * np.arange(1, n_harm + 1)[None, :]).ravel()
        amps = np.tile(harm_amp, len(notes)) * (partials < 0.45 * sr)
        tone = (amps[:, None] * np.sin(2 * np.pi * partials[:, None] * tt[None, :])).sum(axis=0)
        lo, hi = max(start, 0), min(start + length, out.size)
        if hi > lo:
            out[lo:hi] += gain * env[lo - start:hi - start] * tone[lo - start:hi - start]
    return out[:n]


def babble(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Babble: 4-8 espeak-ng talkers in non-corpus languages, each speaking random sentences, summed."""
    from hushkit.synthetic.espeak import Synthesizer
    from hushkit.synthetic.speakers import babble_voices
    from hushkit.synthetic.words import make_sentence

    synth = Synthesizer()
    voices = babble_voices()
    n_talkers = int(rng.integers(4, 9))
    chosen = [voices[i] for i in rng.choice(len(voices), size=n_talkers, replace=False)]
    seconds = n / sr
    out = np.zeros(n)
    for voice in chosen:
        rate = int(rng.integers(140, 200))
        # one long utterance per talker: enough words to cover the instance plus a random offset
        n_words = int(np.ceil((seconds + 1.5) * rate / 60.0 * 1.3)) + 2
        text = make_sentence(rng, "en", n_words)
        audio, espeak_sr = synth.synthesize(text, voice, rate=rate, pitch=int(rng.integers(20, 80)),
                                            pitch_range=int(rng.integers(30, 90)))
        audio = resample(audio, espeak_sr, sr).astype(np.float64)
        if audio.size < n:
            audio = np.tile(audio, int(np.ceil(n / audio.size)) + 1)
        offset = int(rng.integers(0, audio.size - n + 1))
        out += _db(-6, 0, rng) * _unit(audio[offset:offset + n])
    return out


def siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Emergency siren: a harmonic tone swept by a wail (slow) or yelp (fast) or two-tone pattern, passing by
    (a slow level swell), over a faint traffic floor."""
    t = np.arange(n) / sr
    f_low, f_high = rng.uniform(450.0, 800.0), rng.uniform(1100.0, 1700.0)
    pattern = rng.choice(["wail", "yelp", "two-tone"])
    period = {"wail": rng.uniform(2.0, 6.0), "yelp": rng.uniform(0.15, 0.4), "two-tone": rng.uniform(0.8, 1.6)}[pattern]
    phase = (t / period + rng.uniform()) % 1.0
    if pattern == "two-tone":
        sweep = (phase < 0.5).astype(float)
    else:  # up fast, down slowly (a rotating-siren-like saw-triangle)
        rise = rng.uniform(0.3, 0.6)
        sweep = np.where(phase < rise, phase / rise, (1.0 - phase) / (1.0 - rise))
    freq = f_low + (f_high - f_low) * sweep
    cycles = 2 * np.pi * np.cumsum(freq) / sr
    harmonics = int(rng.integers(2, 6))
    tone = sum((k ** -rng.uniform(0.8, 1.6)) * np.sin(k * cycles) for k in range(1, harmonics + 1)
               if k * f_high < 0.45 * sr)
    swell = np.exp(0.8 * _slow_noise(rng, n, sr, rng.uniform(0.1, 0.3)))
    return _unit(tone * swell) + _db(-30, -18, rng) * _colored(rng, n, sr, 2.0, f_low=40.0)


def clatter(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Dishes and cutlery: clusters of metallic impacts, each a few inharmonic high-Q modes ringing for tens to
    hundreds of milliseconds, over a faint room floor."""
    seconds = n / sr
    clusters = rng.uniform(0, seconds, int(rng.poisson(rng.uniform(0.5, 2.0) * seconds)) + 1)
    times = np.concatenate([c + np.cumsum(rng.exponential(rng.uniform(0.03, 0.15), int(rng.integers(1, 6))))
                            for c in clusters])
    times = times[times < seconds] * sr
    out = np.zeros(n)
    n_objects = 3  # a plate, a glass, a fork: each its own set of modes
    kind = rng.integers(0, n_objects, times.size)
    for k in range(n_objects):
        length = int(sr * rng.uniform(0.08, 0.4))
        tk = np.arange(length) / sr
        modes = rng.uniform(900.0, min(7000.0, 0.42 * sr), int(rng.integers(3, 7)))
        decays = rng.uniform(8.0, 40.0, modes.size)
        kernel = (np.exp(-decays[:, None] * tk) * np.sin(2 * np.pi * modes[:, None] * tk
                                                         + rng.uniform(0, 2 * np.pi, (modes.size, 1)))).sum(0)
        sel = kind == k
        train = _event_train(rng, n, times[sel], rng.lognormal(0.0, 0.5, sel.sum()))
        out += signal.fftconvolve(train, kernel)[:n]
    return _unit(out) + _db(-40, -28, rng) * _colored(rng, n, sr, 1.0)


CATEGORIES: dict[str, NoiseGenerator] = {
    "white": white,
    "pink": pink,
    "brown": brown,
    "babble": babble,
    "hum": hum,
    "fan": fan,
    "traffic": traffic,
    "keyboard": keyboard,
    "rain": rain,
    "music": music,
    "siren": siren,
    "clatter": clatter,
}


def _limit(x: np.ndarray, ceiling: float) -> np.ndarray:
    """Soft-knee peak limiter: samples above 0.7*ceiling are compressed smoothly below `ceiling`."""
    knee = 0.7 * ceiling
    mag = np.abs(x)
    over = mag > knee
    squashed = knee + (ceiling - knee) * np.tanh((mag[over] - knee) / (ceiling - knee))
    y = x.copy()
    y[over] = np.sign(x[over]) * squashed
    return y


def generate_noise(category: str, rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """One noise instance: `seconds` long, RMS uniformly random in [-30, -20] dBFS, peak <= 0.99, finite."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown noise category {category!r}; known categories: {', '.join(CATEGORIES)}")
    n = int(round(seconds * sample_rate))
    if n <= 0:
        raise ValueError(f"generate_noise: {seconds} s at {sample_rate} Hz is no samples")
    target_db = float(rng.uniform(*RMS_DB_RANGE))
    x = np.asarray(CATEGORIES[category](rng, n, sample_rate), dtype=np.float64)
    if x.shape != (n,) or not np.all(np.isfinite(x)) or _rms(x) < 1e-9:
        raise RuntimeError(f"noise generator {category!r} returned unusable audio (shape {x.shape})")
    x = _unit(x) * 10.0 ** (target_db / 20.0)
    # Too spiky for the target level: lower the level as far as the range allows, then limit the peaks.
    ceiling = MAX_PEAK - 1e-3  # margin for the float32 cast and a later 16-bit write
    lowest = 10.0 ** (RMS_DB_RANGE[0] / 20.0) * 1.001
    for _ in range(100):
        if _rms(x) < lowest:
            x = x * (lowest / _rms(x))
        peak = float(np.max(np.abs(x)))
        if peak <= ceiling:
            break
        x = x * max(ceiling / peak, lowest / _rms(x))
        if np.max(np.abs(x)) > ceiling:
            x = _limit(x, ceiling)
    else:
        raise RuntimeError(f"noise {category!r}: could not meet peak <= {MAX_PEAK} at >= {RMS_DB_RANGE[0]} dBFS RMS")
    out = x.astype(np.float32)
    if not np.all(np.isfinite(out)) or np.max(np.abs(out)) > MAX_PEAK:
        raise RuntimeError(f"noise {category!r}: could not bring the peak under {MAX_PEAK}")
    return out
