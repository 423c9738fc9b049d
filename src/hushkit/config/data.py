"""The data stages' sections: `download`, `rirs`, `mix` and `features`."""
from __future__ import annotations

from dataclasses import dataclass, fields

from hushkit.config.schema import ParamsError, Section, above, at_least, nonempty, one_of, param, within
from hushkit.config.train import REVERB_TARGETS, Range

# The noise category of files directly in a noise folder, not in a sub-folder of it (a `local` folder's, or a
# catalogue file without a class): noise nobody has named. The tagger never learns it as a label.
UNCATEGORIZED = "uncategorized"
# The split `pools.csv` (the mix stage's) gives every noise file of mix.conditions.unseen_noise.categories: held out
# of the denoisers' training and validation, used only by the test's unseen-noise condition.
UNSEEN = "unseen"

# --- download -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalFolders(Section):
    """`download.local`: the folders of the `local` source (relative to the repo, or absolute)."""

    speech: str | None = None  # speaker = sub-folder (or a LibriSpeech SPEAKER-CHAPTER-UTTERANCE name)
    noise: str | None = None  # category = first sub-folder (files directly inside: UNCATEGORIZED)
    language: str | None = "und"  # the speech's language (null: und)


@dataclass(frozen=True)
class IngestParams(Section):
    """`download.ingest`: ingested files outside these rules are quarantined (hushkit.acquisition.ingest.IngestRules)."""

    min_seconds: float = param(0.5, rule=at_least(0))
    max_seconds: float | None = param(None, rule=above(0, note="or null: no limit"))
    silence_dbfs: float = -60.0  # RMS below this: silent
    clip_fraction: float = param(0.01, rule=within(0.0, 1.0))  # more samples at full scale than this: clipped


@dataclass(frozen=True)
class MinimumParams(Section):
    """`download.minimum`: the stage fails when the accepted corpus holds less (null: no minimum); the keys are
    hushkit.checks.suites.USABLE_MEASURES."""

    speakers: float | None = param(None, rule=at_least(0))
    speech_files: float | None = param(None, rule=at_least(0))
    speech_minutes: float | None = param(None, rule=at_least(0))
    noise_files: float | None = param(None, rule=at_least(0))
    noise_categories: float | None = param(None, rule=at_least(0))
    noise_minutes: float | None = param(None, rule=at_least(0))
    pairs: float | None = param(None, rule=at_least(0))
    pair_minutes: float | None = param(None, rule=at_least(0))

    def set(self) -> dict[str, float]:
        """The minimums that are set, by measure."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class SyntheticSpeech(Section):
    """`download.speech`: the synthetic corpus's speakers and sentences."""

    languages: list[str] = param(rule=nonempty())
    speakers_per_language: int = param(rule=at_least(1))  # speaker = espeak-ng voice variant x pitch x rate
    sentences_per_speaker: int = param(rule=at_least(1))
    min_seconds: float = param(rule=above(0))
    max_seconds: float = param(rule=above(0))

    def check(self) -> None:
        if self.min_seconds > self.max_seconds:
            raise ParamsError("min_seconds", f" must not exceed max_seconds ({self.max_seconds}), got "
                                             f"{self.min_seconds}")


@dataclass(frozen=True)
class SyntheticNoise(Section):
    """`download.noise`: the synthetic corpus's noise categories (hushkit.synthetic.noise) and clips."""

    categories: list[str] = param(rule=nonempty())
    instances_per_category: int = param(rule=at_least(1))
    seconds: float = param(rule=above(0))


@dataclass(frozen=True)
class DownloadParams(Section):
    """`download`: where speech and noise come from (hushkit.acquisition.sources), and the rules they must pass."""

    RENAMED = {"source": "sources"}

    # synthetic, local, or a corpus of hushkit.acquisition.catalogue; `name:speech` / `name:noise` takes one kind
    sources: list[str] | str = param(rule=nonempty(note="list at least one of: synthetic, local, or a catalogue "
                                                        "corpus"))
    sample_rate: int = param(rule=above(0))  # everything is resampled once, here, to this rate
    seed: int  # the synthetic corpus's
    speech: SyntheticSpeech
    noise: SyntheticNoise
    local: LocalFolders = param(factory=LocalFolders)
    cache: str = ".cache/corpora"  # downloads, extractions and ingested audio, kept between runs
    ingest: IngestParams = param(factory=IngestParams)
    minimum: MinimumParams = param(factory=MinimumParams)


# --- rirs -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoomSize(Section):
    """`rirs.room`: each dimension's [low, high] in metres, drawn uniformly."""

    length: list[float]
    width: list[float]
    height: list[float]

    def check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                raise ParamsError(f.name, f" must be [low, high] with 0 < low <= high, got {value}")


@dataclass(frozen=True)
class RirSplits(Section):
    """`rirs.splits`: the shares of the bank kept for validation and for the test's reverberant condition."""

    val: float = param(0.0, rule=within(0.0, 1.0, open_high=True))
    test: float = param(0.0, rule=within(0.0, 1.0, open_high=True))


@dataclass(frozen=True)
class RirsParams(Section):
    """`rirs`: the bank of room impulse responses (simulated shoebox rooms, and the user's own)."""

    seed: int
    count: int = param(rule=at_least(0))
    rt60: Range  # seconds; every simulated RIR's measured RT60 is in range
    room: RoomSize
    max_seconds: float = param(rule=above(0))  # stored length of each RIR
    splits: RirSplits = param(factory=RirSplits)
    local: str | None = None  # a folder of measured RIRs, added to the bank and split

    def check(self) -> None:
        if self.rt60.low <= 0:
            raise ParamsError("rt60.low", f" must be > 0, got {self.rt60.low}")


# --- mix ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeldOut(Section):
    """`val` / `test` counts held out of training (noise instances per category, or speakers)."""

    val: int = param(1, rule=at_least(0))
    test: int = param(1, rule=at_least(0))


@dataclass(frozen=True)
class RecordedSplits(Section):
    """`mix.recorded`: speakers of recorded pairs held out when the corpus has no split of its own."""

    val_speakers: int = param(1, rule=at_least(0))
    test_speakers: int = param(1, rule=at_least(0))


@dataclass(frozen=True)
class UnseenNoise(Section):
    """`mix.conditions.unseen_noise`: noise categories held out of training and validation altogether."""

    categories: list[str] = param(factory=list)
    utterances: int = param(0, rule=at_least(0))


@dataclass(frozen=True)
class Reverberant(Section):
    """`mix.conditions.reverberant`: test speech convolved with a test-split RIR, scored against its
    early-reflection part (the first early_ms) or the dry speech."""

    utterances: int = param(0, rule=at_least(0))
    target: str = param("early", rule=one_of(*REVERB_TARGETS))
    early_ms: float = param(50.0, rule=above(0))


@dataclass(frozen=True)
class Conditions(Section):
    """`mix.conditions`: the test conditions beside the matched one."""

    unseen_noise: UnseenNoise = param(factory=UnseenNoise)
    reverberant: Reverberant = param(factory=Reverberant)


@dataclass(frozen=True)
class MixParams(Section):
    """`mix`: speaker- and noise-disjoint splits and the mixtures made of them."""

    seed: int
    val_speakers: int = param(rule=at_least(0))
    test_speakers: int = param(rule=at_least(0))
    snr_db: Range  # train/val pairs: SNR drawn uniformly
    test_snr_db: list[float] = param(rule=nonempty())  # every test utterance at each level
    mixtures_per_utterance: int = param(rule=at_least(1))
    level_dbfs: Range  # mixture RMS
    trim_top_db: float = param(rule=above(0))
    snr_tolerance_db: float = param(rule=at_least(0))
    noise_instances: HeldOut = param(factory=HeldOut)  # per category
    conditions: Conditions = param(factory=Conditions)
    recorded: RecordedSplits = param(factory=RecordedSplits)


# --- features -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeaturesParams(Section):
    """`features`: training crops; utterances are packed once into arrays."""

    segment_seconds: float = param(rule=above(0))
