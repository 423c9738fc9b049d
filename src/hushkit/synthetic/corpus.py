"""The embedded corpus: synthetic speech (espeak-ng) and procedural noise, built offline from a seed.

`build_synthetic(params["download"], out_dir)` writes

    out_dir/speech/<speaker_id>/<speaker_id>_<nnn>.wav   (PCM_16, params sample_rate)
    out_dir/noise/<category>/<category>_<nn>.wav          (PCM_16, params sample_rate)

and returns the manifest (one row per file, sorted by path). Every random stream is derived from
`seed` and a stable key (speaker id, category + instance), so changing one count does not reshuffle
the rest, and the same params always give byte-identical files.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hushkit.audio import resample, write_audio
from hushkit.synthetic.espeak import Synthesizer
from hushkit.synthetic.noise import CATEGORIES, generate_noise
from hushkit.synthetic.speakers import Speaker, make_speakers
from hushkit.synthetic.words import make_sentence
from hushkit.io import sha256_file

MANIFEST_COLUMNS = [
    "path", "kind", "speaker", "category", "language", "text", "voice",
    "duration", "sample_rate", "sha256", "source", "license",
]
SPEECH_SOURCE = "synthetic/espeak-ng"
NOISE_SOURCE = "synthetic/procedural"
SPEECH_LICENSE = "CC0-1.0 (generated; espeak-ng engine GPL-3.0)"
NOISE_LICENSE = "CC0-1.0 (generated)"
SUBTYPE = "PCM_16"

# stream ids for SeedSequence([seed, stream, ...])
_STREAM_SPEAKERS, _STREAM_SPEECH, _STREAM_NOISE = 0, 1, 2
MAX_ATTEMPTS = 25
# first guess of seconds per word at espeak rate r (words/min): factor * 60 / r (measured: 0.75..1.2)
_SECONDS_PER_WORD_FACTOR = {"en": 0.9, "ru": 1.0}


def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def _pcm_safe(audio: np.ndarray) -> np.ndarray:
    """16-bit writing does not clip: keep the peak below full scale (rarely needed after resampling)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * np.float32(0.99 / peak) if peak > 0.99 else audio


def synthesize_sentence(
    synth: Synthesizer,
    speaker: Speaker,
    rng: np.random.Generator,
    sample_rate: int,
    min_seconds: float,
    max_seconds: float,
) -> tuple[str, np.ndarray]:
    """A random sentence for `speaker` whose audio (at `sample_rate`) lasts between min and max seconds."""
    if not 0 < min_seconds < max_seconds:
        raise ValueError(f"need 0 < min_seconds < max_seconds, got {min_seconds}, {max_seconds}")
    span = max_seconds - min_seconds
    target = float(rng.uniform(min_seconds + 0.1 * span, max_seconds - 0.1 * span))
    seconds_per_word = _SECONDS_PER_WORD_FACTOR.get(speaker.language, 1.0) * 60.0 / speaker.rate
    n_words = max(1, int(round(target / seconds_per_word)))
    tried: list[tuple[int, float]] = []
    for _ in range(MAX_ATTEMPTS):
        text = make_sentence(rng, speaker.language, n_words)
        audio, espeak_sr = synth.synthesize(
            text, speaker.voice, rate=speaker.rate, pitch=speaker.pitch, pitch_range=speaker.pitch_range
        )
        audio = resample(audio, espeak_sr, sample_rate)
        duration = audio.size / sample_rate
        if min_seconds <= duration <= max_seconds:
            return text, _pcm_safe(audio)
        tried.append((n_words, round(duration, 2)))
        # re-aim with the speaking rate just observed, and always move in the right direction
        estimate = max(1, int(round(target / (duration / n_words))))
        if duration > max_seconds:
            n_words = max(1, min(estimate, n_words - 1))
        else:
            n_words = max(estimate, n_words + 1)
    raise RuntimeError(
        f"speaker {speaker.id} ({speaker.voice}, rate {speaker.rate}): no sentence within "
        f"[{min_seconds}, {max_seconds}] s after {MAX_ATTEMPTS} attempts; (words, seconds) tried: {tried}"
    )


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def build_synthetic(params: dict[str, Any], out_dir: Path, *, show_progress: bool = True) -> pd.DataFrame:
    """Build the embedded corpus from the `download` section of params.yaml; return the manifest."""
    out_dir = Path(out_dir)
    sample_rate = int(params["sample_rate"])
    seed = int(params["seed"])
    speech, noise = params["speech"], params["noise"]
    min_s, max_s = float(speech["min_seconds"]), float(speech["max_seconds"])
    categories = list(noise["categories"])
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"download.noise.categories: unknown {unknown}; known: {', '.join(CATEGORIES)}")
    if len(set(categories)) != len(categories):
        raise ValueError(f"download.noise.categories has duplicates: {categories}")

    speakers = make_speakers(list(speech["languages"]), int(speech["speakers_per_language"]),
                             _rng(seed, _STREAM_SPEAKERS))
    n_sentences = int(speech["sentences_per_speaker"])
    n_instances = int(noise["instances_per_category"])
    noise_seconds = float(noise["seconds"])
    synth = Synthesizer()
    rows: list[dict[str, Any]] = []

    def add_row(path: Path, audio: np.ndarray, **fields: Any) -> None:
        write_audio(path, audio, sample_rate, subtype=SUBTYPE)
        rows.append({
            "path": path.relative_to(out_dir).as_posix(),
            "duration": audio.size / sample_rate,
            "sample_rate": sample_rate,
            "sha256": sha256_file(path),
            **fields,
        })

    progress = _progress() if show_progress else None
    if progress is not None:
        progress.start()
    try:
        task = progress.add_task("speech", total=len(speakers) * n_sentences) if progress else None
        for speaker in speakers:
            rng = _rng(seed, _STREAM_SPEECH, _key(speaker.id))
            for i in range(n_sentences):
                text, audio = synthesize_sentence(synth, speaker, rng, sample_rate, min_s, max_s)
                path = out_dir / "speech" / speaker.id / f"{speaker.id}_{i:03d}.wav"
                add_row(path, audio, kind="speech", speaker=speaker.id, category="", language=speaker.language,
                        text=text, voice=speaker.voice, source=SPEECH_SOURCE, license=SPEECH_LICENSE)
                if progress:
                    progress.advance(task)
        task = progress.add_task("noise", total=len(categories) * n_instances) if progress else None
        for category in categories:
            for j in range(n_instances):
                rng = _rng(seed, _STREAM_NOISE, _key(category), j)
                audio = generate_noise(category, rng, noise_seconds, sample_rate)
                path = out_dir / "noise" / category / f"{category}_{j:02d}.wav"
                add_row(path, audio, kind="noise", speaker="", category=category, language="", text="",
                        voice="", source=NOISE_SOURCE, license=NOISE_LICENSE)
                if progress:
                    progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()

    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest = manifest.sort_values("path", kind="stable").reset_index(drop=True)
    manifest["duration"] = manifest["duration"].astype(float)
    manifest["sample_rate"] = manifest["sample_rate"].astype(int)
    return manifest
