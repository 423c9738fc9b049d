"""Offline embedded corpus: espeak-ng speech and procedural noise, generated deterministically from a seed."""
from __future__ import annotations

from hushkit.corpus.espeak import EspeakError, Synthesizer
from hushkit.corpus.noise import CATEGORIES, generate_noise
from hushkit.corpus.speakers import Speaker, babble_voices, make_speakers
from hushkit.corpus.synthetic import MANIFEST_COLUMNS, build_synthetic
from hushkit.corpus.words import make_sentence

__all__ = [
    "CATEGORIES",
    "EspeakError",
    "MANIFEST_COLUMNS",
    "Speaker",
    "Synthesizer",
    "babble_voices",
    "build_synthetic",
    "generate_noise",
    "make_sentence",
    "make_speakers",
]
