"""Dynamic mixing: every training step mixes fresh examples from packed clean speech, packed noise and the RIR bank.

Each example draws a speech crop, one or two noise crops (summed), an SNR, a level, and optional reverberation,
equalisation, band-limiting and clipping (`train.common.dynamic_mixing`). With `babble.p`, the first noise of an
example is instead babble: crops of `babble.talkers` utterances of other training speakers, summed at equal levels
(pools of recorded non-speech sounds have no talkers in the background; a model that never heard any mistakes
them for the speech it keeps, or the speech for them). Every draw comes from a generator seeded
by (seed, step) alone, so step N's batch is the same whenever it is made: a killed run resumes to the same weights,
and a batch split across processes is the same batch.

The draws are a few numbers per example (numpy, on the CPU); the audio work is vectorised over the batch in torch
on the training device: gathering crops from the flat pools by index arithmetic, FFT convolution with the RIRs,
FFT-domain equalisation, and the SNR arithmetic. No file I/O and no resampling happen here.

Order of operations, chosen so the drawn SNR is the SNR of the mixture the model sees:
speech crop → reverberation (the target: its early-reflection part, or the dry crop) → equalisation/band limit
(speech, target and noise alike: a microphone colours everything) → noise scaled to the drawn SNR against the
(reverberant) speech's active-frame power → sum → level → peak limit → clipping of the mixture only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from hushkit.config.train import DynamicMixingParams, TrainConfig

PEAK_LIMIT = 0.99
_DRAW_STREAM, _PREPARE_STREAM = 1, 2


@dataclass
class Draws:
    """Everything random about one batch (one entry per example), drawn on the CPU from (seed, step)."""

    speech_row: np.ndarray
    speech_start: np.ndarray
    noise_row: np.ndarray
    noise_start: np.ndarray
    second_row: np.ndarray
    second_start: np.ndarray
    second_on: np.ndarray
    second_db: np.ndarray
    snr_db: np.ndarray
    level_db: np.ndarray
    rir_row: np.ndarray
    reverb_on: np.ndarray
    eq_on: np.ndarray
    eq_tilt: np.ndarray  # dB per octave around 1 kHz
    eq_low: np.ndarray  # low shelf gain (dB) below eq_low_hz
    eq_low_hz: np.ndarray
    eq_high: np.ndarray  # high shelf gain (dB) above eq_high_hz
    eq_high_hz: np.ndarray
    band_on: np.ndarray
    band_hz: np.ndarray
    clip_on: np.ndarray
    clip_fraction: np.ndarray
    babble_on: np.ndarray
    babble_rows: np.ndarray  # (n, talkers) speech pool rows, none of the example's own speaker
    babble_starts: np.ndarray  # (n, talkers)


class Pool:
    """Utterances or clips concatenated into one flat tensor, with their offsets and lengths."""

    def __init__(self, audio: np.ndarray, index: pd.DataFrame, device: torch.device):
        self.audio = torch.from_numpy(np.array(audio, dtype=np.float32)).to(device)  # a copy: pools are read-only maps
        self.lengths = np.array(index.length, dtype=np.int64)
        # speaker codes (every row its own speaker when the index names none)
        speakers = index["speaker"] if "speaker" in index else pd.Series(np.arange(len(index)))
        self.speakers = pd.factorize(speakers.astype(str))[0]
        self.offset = torch.tensor(np.array(index.offset, dtype=np.int64), device=device)
        self.length = torch.tensor(self.lengths, device=device)
        if len(self.lengths) == 0 or (self.lengths <= 0).any():
            raise ValueError("a dynamic-mixing pool needs at least one non-empty file")

    def __len__(self) -> int:
        return len(self.lengths)

    def crops(self, rows: np.ndarray, starts: np.ndarray, segment: int, loop: bool) -> torch.Tensor:
        """(len(rows), segment) crops starting at `starts`: looped (noise) or zero beyond the end (speech; starts
        may be negative for context before an utterance: zeros there too)."""
        device = self.audio.device
        rows_t = torch.as_tensor(rows, device=device)
        position = torch.as_tensor(starts, device=device)[:, None] + torch.arange(segment, device=device)[None]
        length = self.length[rows_t][:, None]
        if loop:
            return self.audio[self.offset[rows_t][:, None] + torch.remainder(position, length)]
        inside = (position >= 0) & (position < length)
        index = self.offset[rows_t][:, None] + position.clamp(min=0).minimum(length - 1)
        return torch.where(inside, self.audio[index], torch.zeros((), device=device))


class DynamicMixer:
    """Training examples mixed on the fly; `batch(step, batch_size, segment)` → (noisy, target), (B, segment) each,
    on `device`. `part` picks a slice of the batch (the same draws, only those examples made)."""

    def __init__(self, speech: Pool, noise: Pool, rirs: np.ndarray | None, settings: DynamicMixingParams,
                 sample_rate: int, seed: int, device: torch.device):
        self.speech, self.noise, self.settings = speech, noise, settings
        self.sample_rate, self.seed, self.device = int(sample_rate), int(seed), device
        if settings.babble.p > 0 and len(np.unique(speech.speakers)) < 2:
            raise ValueError("train.dynamic_mixing.babble.p > 0 needs training speech of at least two speakers")
        if settings.reverb.p > 0 and (rirs is None or len(rirs) == 0):
            raise ValueError("train.dynamic_mixing.reverb.p > 0 needs training RIRs (the rirs stage's train split)")
        self.rirs = None
        if rirs is not None and len(rirs) and settings.reverb.p > 0:
            self.rirs = torch.from_numpy(np.ascontiguousarray(rirs, dtype=np.float32)).to(device)
            early = int(round(settings.reverb.early_ms / 1000.0 * sample_rate))
            self.early = self.rirs.clone()
            self.early[:, early:] = 0.0
        # SNR over active frames: 25 ms frames every 10 ms, frames within 35 dB of the loudest count (as the mix
        # stage measures it, hushkit.audio.active_power)
        self.frame, self.hop = int(0.025 * sample_rate), int(0.010 * sample_rate)

    # ------------------------------------------------------------------------------------------------ draws
    def draw(self, step: int, batch_size: int, segment: int, stream: int = _DRAW_STREAM) -> Draws:
        """The batch's random numbers, from (seed, stream, step) alone."""
        s, n = self.settings, batch_size
        snr, level = s.snr_db, s.level_dbfs
        rng = np.random.default_rng([self.seed, stream, int(step)])
        speech_row = rng.integers(0, len(self.speech), n)
        room = np.maximum(self.speech.lengths[speech_row] - segment, 0)
        speech_start = (rng.random(n) * (room + 1)).astype(np.int64)
        noise_row, second_row = rng.integers(0, len(self.noise), n), rng.integers(0, len(self.noise), n)
        noise_start = (rng.random(n) * self.noise.lengths[noise_row]).astype(np.int64)
        second_start = (rng.random(n) * self.noise.lengths[second_row]).astype(np.int64)
        if snr.distribution == "uniform":
            snr_db = rng.uniform(snr.low, snr.high, n)
        else:
            snr_db = np.clip(rng.normal(snr.mean, snr.std, n), snr.low, snr.high)
        n_rirs = len(self.rirs) if self.rirs is not None else 1
        drawn = dict(
            speech_row=speech_row, speech_start=speech_start, noise_row=noise_row, noise_start=noise_start,
            second_row=second_row, second_start=second_start, second_on=rng.random(n) < s.second_noise,
            second_db=rng.uniform(-6.0, 0.0, n), snr_db=snr_db, level_db=rng.uniform(level.low, level.high, n),
            rir_row=rng.integers(0, n_rirs, n), reverb_on=rng.random(n) < s.reverb.p,
            eq_on=rng.random(n) < s.eq, eq_tilt=rng.uniform(-3.0, 3.0, n), eq_low=rng.uniform(-8.0, 8.0, n),
            eq_low_hz=np.exp(rng.uniform(np.log(80.0), np.log(400.0), n)), eq_high=rng.uniform(-8.0, 8.0, n),
            eq_high_hz=np.exp(rng.uniform(np.log(2000.0), np.log(6000.0), n)),
            band_on=rng.random(n) < s.bandlimit, band_hz=rng.uniform(3400.0, 7000.0, n),
            clip_on=rng.random(n) < s.clipping, clip_fraction=rng.uniform(0.25, 0.8, n))
        # drawn after the rest, so turning babble on leaves every other draw of a step as it was
        babble_rows = rng.integers(0, len(self.speech), (n, s.babble.talkers))
        own = self.speech.speakers[speech_row][:, None]
        for _ in range(100):  # redraw the talkers who are the example's own speaker
            clash = self.speech.speakers[babble_rows] == own
            if not clash.any():
                break
            babble_rows[clash] = rng.integers(0, len(self.speech), int(clash.sum()))
        babble_starts = (rng.random(babble_rows.shape) * self.speech.lengths[babble_rows]).astype(np.int64)
        return Draws(**drawn, babble_on=rng.random(n) < s.babble.p, babble_rows=babble_rows,
                     babble_starts=babble_starts)

    # ------------------------------------------------------------------------------------------------ audio
    def components(self, draws: Draws, segment: int, part: slice = slice(None)) -> dict[str, torch.Tensor]:
        """The examples `part` of the drawn batch: noisy, target, speech (what the mixture holds) and noise, each
        (B, segment) on the device, before clipping the noisy (kept as `clipped`)."""
        d = _take(draws, part)
        speech, target = self._speech(d, segment)
        noise = self._babble(d, self.noise.crops(d.noise_row, d.noise_start, segment, loop=True))
        second = self.noise.crops(d.second_row, d.second_start, segment, loop=True)
        relative = torch.as_tensor(10.0 ** (d.second_db / 20.0) * d.second_on, dtype=torch.float32,
                                   device=self.device)[:, None]
        noise = noise + relative * second * _rms(noise) / _rms(second)
        speech, target, noise = self._colour(d, speech, target, noise)
        snr = torch.as_tensor(d.snr_db, dtype=torch.float32, device=self.device)[:, None]
        noise_gain = torch.sqrt(self.active_power(speech) / (_power(noise) * 10.0 ** (snr / 10.0)))
        noise = noise * noise_gain
        noisy = speech + noise
        level = torch.as_tensor(d.level_db, dtype=torch.float32, device=self.device)[:, None]
        gain = 10.0 ** (level / 20.0) / _rms(noisy)
        peak = torch.maximum(noisy.abs().amax(-1, keepdim=True), target.abs().amax(-1, keepdim=True)) * gain
        gain = gain * torch.clamp(PEAK_LIMIT / peak.clamp_min(1e-12), max=1.0)
        noisy, target, speech, noise = noisy * gain, target * gain, speech * gain, noise * gain
        clip_on = torch.as_tensor(d.clip_on, device=self.device)[:, None]
        ceiling = noisy.abs().amax(-1, keepdim=True) * torch.as_tensor(d.clip_fraction, dtype=torch.float32,
                                                                        device=self.device)[:, None]
        clipped = torch.where(clip_on, torch.maximum(torch.minimum(noisy, ceiling), -ceiling), noisy)
        return {"noisy": clipped, "unclipped": noisy, "target": target, "speech": speech, "noise": noise}

    def batch(self, step: int, batch_size: int, segment: int, rng: np.random.Generator | None = None,
              part: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """A TrainingSource: the batch of `step` (`rng` is not used: every draw comes from the seed and the step)."""
        made = self.components(self.draw(step, batch_size, segment), segment, part)
        return made["noisy"], made["target"]

    def prepare_batch(self, batch_size: int, segment: int, seed: int) -> torch.Tensor:
        """Noisy examples for a model's input statistics, from a stream of their own (not any training step's)."""
        return self.components(self.draw(seed, batch_size, segment, stream=_PREPARE_STREAM), segment)["noisy"]

    def _speech(self, d: Draws, segment: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech crops and their targets; reverberant ones convolved with their RIR, with the RIR's length of
        context before the crop so the reverberation of earlier speech is in it too."""
        if self.rirs is None or not d.reverb_on.any():
            speech = self.speech.crops(d.speech_row, d.speech_start, segment, loop=False)
            return speech, speech
        context = self.rirs.shape[1]
        long = self.speech.crops(d.speech_row, d.speech_start - context, segment + context, loop=False)
        dry = long[:, context:]
        on = torch.as_tensor(np.flatnonzero(d.reverb_on), device=self.device)
        rows = torch.as_tensor(d.rir_row[d.reverb_on], device=self.device)
        size = _fft_size(segment + 2 * context)
        spectrum = torch.fft.rfft(long[on], n=size)
        wet = torch.fft.irfft(spectrum * torch.fft.rfft(self.rirs[rows], n=size), n=size)[:, context:context + segment]
        speech = dry.index_copy(0, on, wet)
        if self.settings.reverb.target == "dry":
            return speech, dry
        early = torch.fft.irfft(spectrum * torch.fft.rfft(self.early[rows], n=size), n=size)
        return speech, dry.index_copy(0, on, early[:, context:context + segment])

    def _babble(self, d: Draws, noise: torch.Tensor) -> torch.Tensor:
        """`noise` with the babble examples' crop replaced by their talkers' looped crops, each at unit RMS, summed."""
        if not d.babble_on.any():
            return noise
        rows, starts = d.babble_rows[d.babble_on], d.babble_starts[d.babble_on]
        talkers = self.speech.crops(rows.ravel(), starts.ravel(), noise.shape[-1], loop=True)
        babble = (talkers / _rms(talkers)).reshape(*rows.shape, -1).sum(1)
        on = torch.as_tensor(np.flatnonzero(d.babble_on), device=self.device)
        return noise.index_copy(0, on, babble)

    def _colour(self, d: Draws, *signals: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The drawn EQ and band limit, the same curve for every signal of an example (zero phase, FFT domain)."""
        on = d.eq_on | d.band_on
        if not on.any():
            return signals
        segment = signals[0].shape[-1]
        freqs = torch.fft.rfftfreq(segment, 1.0 / self.sample_rate, device=self.device).clamp_min(1.0)[None]
        octaves = torch.log2(freqs / 1000.0)

        def column(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values[on], dtype=torch.float32, device=self.device)[:, None]

        eq = column(d.eq_on.astype(np.float32))
        gain_db = eq * (column(d.eq_tilt) * octaves
                        + column(d.eq_low) * torch.sigmoid(4.0 * torch.log2(column(d.eq_low_hz) / freqs))
                        + column(d.eq_high) * torch.sigmoid(4.0 * torch.log2(freqs / column(d.eq_high_hz))))
        # a steep (~ -60 dB an octave past the cutoff) but smooth low-pass, so the filter stays short in time
        band = column(d.band_on.astype(np.float32))
        gain_db = gain_db - band * 60.0 * torch.relu(torch.log2(freqs / column(d.band_hz))).clamp(max=1.0)
        curve = 10.0 ** (gain_db / 20.0)
        rows = torch.as_tensor(np.flatnonzero(on), device=self.device)
        return tuple(x.index_copy(0, rows, torch.fft.irfft(torch.fft.rfft(x[rows]) * curve, n=segment))
                     for x in signals)

    def active_power(self, speech: torch.Tensor) -> torch.Tensor:
        """(B, 1) mean power over the frames within 35 dB of the loudest (hushkit.audio.active_power, batched)."""
        if speech.shape[-1] < self.frame:
            speech = torch.nn.functional.pad(speech, (0, self.frame - speech.shape[-1]))
        frames = speech.unfold(-1, self.frame, self.hop)
        power = frames.double().square().mean(-1)
        energy = 10.0 * torch.log10(power + 1e-12)
        active = energy > energy.amax(-1, keepdim=True) - 35.0
        mean = (power * active).sum(-1, keepdim=True) / active.sum(-1, keepdim=True)
        return mean.float().clamp_min(1e-12)


def _take(draws: Draws, part: slice) -> Draws:
    return Draws(**{name: value[part] for name, value in vars(draws).items()})


def _power(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean(-1, keepdim=True).clamp_min(1e-12)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return _power(x).sqrt()


def _fft_size(n: int) -> int:
    """The next power of two >= n (fast on every backend)."""
    return 1 << (int(n) - 1).bit_length()


def training_source(config: TrainConfig, features, rirs, sample_rate: int, device: torch.device):
    """The TrainingSource `config.mixing` asks for: `dynamic` (fresh mixtures from the features stage's pools and
    the rirs stage's training RIRs, drawn from `config.seed`) or `fixed` (the mix stage's training pairs)."""
    from pathlib import Path

    from hushkit.io import read_table
    from hushkit.reverb import RirBank
    from hushkit.training.data import PackedSplit

    features = Path(features)
    if config.mixing == "fixed":
        return PackedSplit.load(features / "train")
    mixing = config.dynamic_mixing
    pools = features / "pools"
    if not (pools / "speech.npy").is_file() or not (pools / "noise.npy").is_file():
        raise ValueError(f"{pools}: no speech and noise pools to mix from (a paired corpus alone has none); "
                         "set train.common.mixing: fixed")
    speech, noise = (Pool(np.load(pools / f"{kind}.npy", mmap_mode="r"), read_table(pools / f"{kind}.csv"), device)
                     for kind in ("speech", "noise"))
    bank = None
    if mixing.reverb.p > 0:
        if rirs is None:
            raise ValueError("train: dynamic_mixing.reverb.p > 0 needs the rirs stage's bank (--rirs data/rirs)")
        bank = RirBank.load(rirs).split("train")
    return DynamicMixer(speech, noise, bank, mixing, sample_rate, config.seed, device)
