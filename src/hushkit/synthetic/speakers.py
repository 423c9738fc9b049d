"""Synthetic speakers: an espeak-ng voice (language + variant) with its own pitch, pitch range and rate."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# espeak-ng voice variants (files in espeak-ng-data/voices/!v). The robotic, whispering and klatt
# variants are left out: they do not sound like a plausible talker.
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")

# Base voices per corpus language ("en" is espeak-ng's British English).
BASE_VOICES: dict[str, tuple[str, ...]] = {"en": ("en-us", "en"), "ru": ("ru",)}

RATE_RANGE = (130, 200)  # words per minute
PITCH_RANGE = (25, 75)  # espeak pitch parameter, 0..100 (50 = the variant's own pitch)
PITCH_SPAN_RANGE = (30, 80)  # espeak intonation range, 0..100

# Babble talkers speak languages the corpus never uses, so babble noise never contains a corpus speaker.
_BABBLE_LANGUAGES = ("de", "fr", "es", "it", "pl", "nl", "pt", "sv", "cs", "hu", "fi", "da", "tr", "ro")


@dataclass(frozen=True)
class Speaker:
    id: str
    language: str
    voice: str
    rate: int
    pitch: int
    pitch_range: int

    @property
    def gender(self) -> str:
        return "female" if self.voice.rpartition("+")[2].startswith("f") else "male"


def _voice_order(rng: np.random.Generator, language: str) -> list[str]:
    """All base x variant voices of a language, alternating male and female, in a random order."""
    bases = BASE_VOICES[language]
    males = [f"{b}+{v}" for b in bases for v in MALE_VARIANTS]
    females = [f"{b}+{v}" for b in bases for v in FEMALE_VARIANTS]
    males = [males[i] for i in rng.permutation(len(males))]
    females = [females[i] for i in rng.permutation(len(females))]
    # start with a random gender so a small count is not always male-first
    first, second = (males, females) if rng.random() < 0.5 else (females, males)
    order: list[str] = []
    for i in range(max(len(males), len(females))):
        order += [v[i] for v in (first, second) if i < len(v)]
    return order


def make_speakers(languages: list[str], per_language: int, rng: np.random.Generator) -> list[Speaker]:
    """`per_language` distinct speakers for each language, ids "<lang>-spkNN".

    Each language draws from its own child generator (taken from `rng` in language order), and a
    language's speaker k depends only on draws for speakers 0..k, so raising `per_language` keeps
    the existing speakers unchanged.
    """
    unknown = [lang for lang in languages if lang not in BASE_VOICES]
    if unknown:
        raise ValueError(f"make_speakers: no voices for {unknown}; known languages: {sorted(BASE_VOICES)}")
    if per_language < 1:
        raise ValueError(f"make_speakers: per_language must be >= 1, got {per_language}")
    speakers: list[Speaker] = []
    for language in languages:
        lang_rng = np.random.default_rng(int(rng.integers(2**63)))
        voices = _voice_order(lang_rng, language)
        seen: set[tuple[str, int, int]] = set()
        for k in range(per_language):
            voice = voices[k % len(voices)]
            for _ in range(1000):
                rate = int(lang_rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
                pitch = int(lang_rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
                span = int(lang_rng.integers(PITCH_SPAN_RANGE[0], PITCH_SPAN_RANGE[1] + 1))
                # a reused voice must differ clearly in pitch or rate from its earlier uses
                if all(abs(pitch - p) >= 8 or abs(rate - r) >= 15 for v, p, r in seen if v == voice):
                    break
            else:
                raise ValueError(f"make_speakers: cannot make {per_language} distinct {language} speakers")
            seen.add((voice, pitch, rate))
            speakers.append(Speaker(f"{language}-spk{k:02d}", language, voice, rate, pitch, span))
    return speakers


def babble_voices() -> list[str]:
    """Fixed list of espeak-ng voices in languages other than the corpus languages, for babble noise."""
    variants = MALE_VARIANTS[:6] + FEMALE_VARIANTS[:4]
    return [f"{lang}+{variants[i % len(variants)]}" for i, lang in enumerate(_BABBLE_LANGUAGES)] + [
        f"{lang}+{variants[(i + 5) % len(variants)]}" for i, lang in enumerate(_BABBLE_LANGUAGES)
    ]
