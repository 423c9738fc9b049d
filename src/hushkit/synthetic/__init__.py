"""Offline embedded corpus: espeak-ng speech and procedural noise, generated deterministically from a seed."""
from __future__ import annotations

from hushkit.synthetic.espeak import EspeakError, Synthesizer
from hushkit.synthetic.noise import CATEGORIES, generate_noise
from hushkit.synthetic.speakers import Speaker, babble_voices, make_speakers
from hushkit.synthetic.corpus import MANIFEST_COLUMNS, build_synthetic
from hushkit.synthetic.words import make_sentence

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
