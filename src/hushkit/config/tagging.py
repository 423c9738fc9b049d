"""The `tagging` section: the clips (`tagging.clips`: how many curated and noisy clips each split gets, how long
they are, the ranges their SNRs and levels are drawn from; hushkit.tagging.clips), the taggers and their training
settings, their evaluation, and the defaults of `hushkit tag` (`tagging.tag`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hushkit.config.schema import Section, above, at_least, nonempty, one_of, param, within
from hushkit.config.train import Range, TrainConfig, TrainParams

# `tagging.clips.held_out`: what the tagger does with the noise categories the mix stage holds out of the
# denoisers' training (mix.conditions.unseen_noise): leave them out of its labels, or learn them too.
HELD_OUT_SKIP, HELD_OUT_LEARN = "skip", "learn"


@dataclass(frozen=True)
class SplitCounts(Section):
    """A number of clips per split."""

    train: int = param(rule=at_least(0))
    val: int = param(rule=at_least(0))
    test: int = param(rule=at_least(0))


@dataclass(frozen=True)
class ClipParams(Section):
    """`clips`: curated clips are one noise category alone (`curated_per_category` of every category, per split);
    noisy clips are speech plus 1 to `max_noises` noise categories, each at its own SNR to the speech drawn from
    `snr_db` (`noisy` per split). Every clip is `seconds` long at a level drawn from `level_dbfs`; the speech is
    trimmed of its silent ends (`trim_top_db` below its peak) first. `held_out`: `skip` leaves the categories the
    denoisers never train on out of the labels; `learn` makes them labels too, their noise instances split among
    the tagger's own train, val and test (hushkit.tagging.categories)."""

    seed: int = 13
    seconds: float = param(2.0, rule=above(0))
    curated_per_category: SplitCounts = param(factory=lambda: SplitCounts(train=24, val=4, test=8))
    noisy: SplitCounts = param(factory=lambda: SplitCounts(train=240, val=40, test=80))
    max_noises: int = param(3, rule=at_least(1))
    snr_db: Range = param(factory=lambda: Range(-5.0, 15.0))
    level_dbfs: Range = param(factory=lambda: Range(-35.0, -15.0))
    trim_top_db: float = param(35.0, rule=above(0))
    held_out: str = param(HELD_OUT_SKIP, rule=one_of(HELD_OUT_SKIP, HELD_OUT_LEARN))


@dataclass(frozen=True)
class TagEvaluateParams(Section):
    """`evaluate`: the percentile-bootstrap intervals of lwlrap (resamples of the test clips, seeded)."""

    resamples: int = param(1000, rule=at_least(1))
    seed: int = 0


@dataclass(frozen=True)
class TagParams(Section):
    """`tag`: the defaults of `hushkit tag` (hushkit.tagging.inference), which --threshold and --segment-seconds
    override: a label is tagged where its probability is above `threshold`; with `segment_seconds`, each stretch
    of that length is tagged on its own row (the last one may be shorter), else each file as a whole (null). No
    stage reads it."""

    threshold: float = param(0.5, rule=within(0.0, 1.0))
    segment_seconds: float | None = param(None, rule=above(0, note="or null: whole files"))


@dataclass(frozen=True)
class TaggingParams(Section):
    """`tagging`: the clips (tag-features), the taggers trained (tag-train@<arch>: `architectures`, with
    `common` and `models.<arch>` exactly as the `train` section's, read by the same TrainConfig) and their
    evaluation (tag-evaluate@<arch>); the registered model the exports become versions of (tag-export@<arch>);
    `tag`: the defaults of `hushkit tag`."""

    architectures: list[str] = param(rule=nonempty())
    clips: ClipParams = param(factory=ClipParams)
    common: dict[str, Any] = param(factory=dict)
    models: dict[str, dict[str, Any] | None] = param(factory=dict)
    evaluate: TagEvaluateParams = param(factory=TagEvaluateParams)
    registered_model: str | None = None  # null: hushkit.registry.REGISTERED_TAGGER
    tag: TagParams = param(factory=TagParams)

    def check(self) -> None:
        for arch in dict.fromkeys([*self.architectures, *self.models]):
            self.config(arch)

    def config(self, arch: str, **derived_values: Any) -> TrainConfig:
        """`arch`'s TrainConfig (an error names tagging.common or tagging.models.<arch>)."""
        return TrainParams(architectures=self.architectures, common=self.common, models=self.models).config(
            arch, **derived_values)
