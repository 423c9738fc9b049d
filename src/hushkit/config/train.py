"""The `train` section: the architectures to train, and each one's settings (`TrainConfig`): `train.common` with
`train.models.<arch>` merged over it (hushkit.params.architecture_params), so an experiment may change one
architecture alone."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from hushkit.config.schema import (
    ParamsError, Rule, Section, above, at_least, derived, nonempty, one_of, param, within,
)

SCHEDULES = ("constant", "cosine", "step", "onecycle")  # hushkit.training.schedules
PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # hushkit.training.precision
MIXING_MODES = ("dynamic", "fixed")
SNR_DISTRIBUTIONS = ("uniform", "normal")
REVERB_TARGETS = ("early", "dry")
PROBABILITY = within(0.0, 1.0, note="a probability")


@dataclass(frozen=True)
class Range(Section):
    """A [low, high] range of a quantity (dB, seconds)."""

    low: float
    high: float

    def check(self) -> None:
        if self.low > self.high:
            raise ParamsError("low", f" must not exceed high ({self.high}), got {self.low}")


# --- the loop's settings --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LrSchedule(Section):
    """`schedule`: the learning-rate schedule, stepped every optimizer step (hushkit.training.schedules)."""

    name: str = param("cosine", rule=one_of(*SCHEDULES))
    warmup_steps: int = param(0, rule=at_least(0))  # linear LR warm-up over the first steps (not with onecycle)
    step_every_epochs: int = param(3, rule=at_least(1))  # step: multiply the LR by step_gamma this often
    step_gamma: float = param(0.5, rule=within(0.0, 1.0, open_low=True))
    onecycle_pct_start: float = param(0.3, rule=within(0.0, 1.0, open_low=True, open_high=True))  # rising share

    def check(self) -> None:
        if self.name == "onecycle" and self.warmup_steps:
            raise ParamsError("warmup_steps", " must be 0 with onecycle, which warms up by itself (see "
                                              "schedule.onecycle_pct_start)")


@dataclass(frozen=True)
class EarlyStoppingParams(Section):
    """`early_stopping`: stop after `patience` epochs without a validation improvement of more than `min_delta`."""

    patience: int = param(0, rule=at_least(0, note="0: off"))
    min_delta: float = param(0.0, rule=at_least(0))


@dataclass(frozen=True)
class SwaParams(Section):
    """`swa`: stochastic weight averaging of the weights at the end of every epoch from `start_epoch` on; SWALR
    anneals to `lr` when averaging starts, replacing the schedule (null: keep the schedule)."""

    start_epoch: int = param(0, rule=at_least(0, note="0: off"))
    lr: float | None = param(None, rule=above(0, note="or null: keep the schedule"))


@dataclass(frozen=True)
class GradNormParams(Section):
    """`grad_norms`: `per_layer` logs every layer's mean gradient norm per epoch (`grad_norm.<layer>`, and
    `grad_norm_recurrent` for the recurrent layers together); a model with recurrent layers (GRU, LSTM) is warned
    about when their epoch's mean gradient norm falls below `recurrent_min` (0: no warning), the sign that they
    have stopped learning while the rest of the model may not have (hushkit.training.gradients)."""

    per_layer: bool = False
    recurrent_min: float = param(1e-4, rule=at_least(0, note="0: off"))


@dataclass(frozen=True)
class AdversarialParams(Section):
    """`adversarial`, for models with a discriminator: the generator's adversarial term's weight, the
    discriminator's learning rate, and the epoch it starts (later: pre-train on the reconstruction loss alone)."""

    weight: float = param(1.0, rule=at_least(0, note="0: off"))
    lr: float = param(2e-4, rule=above(0))
    start_epoch: int = param(1, rule=at_least(1))


# --- dynamic mixing -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SnrDistribution(Section):
    """`snr_db`: uniform over [low, high], or normal (mean, std) truncated to it."""

    distribution: str = param("uniform", rule=one_of(*SNR_DISTRIBUTIONS))
    low: float = -5.0
    high: float = 25.0
    mean: float = 10.0
    std: float = param(8.0, rule=above(0))

    def check(self) -> None:
        Range(self.low, self.high)


@dataclass(frozen=True)
class ReverbParams(Section):
    """`reverb`: the probability of convolving the speech with a training RIR; the target is its early-reflection
    part (the RIR's first early_ms) or the dry speech."""

    p: float = param(0.0, rule=PROBABILITY)
    target: str = param("early", rule=one_of(*REVERB_TARGETS))
    early_ms: float = param(50.0, rule=above(0))


@dataclass(frozen=True)
class BabbleParams(Section):
    """`babble`: the probability that an example's (first) noise is babble of `talkers` other training speakers'
    speech, summed at equal levels, instead of a noise crop."""

    p: float = param(0.0, rule=PROBABILITY)
    talkers: int = param(4, rule=at_least(1))


@dataclass(frozen=True)
class AttenuationLimitParams(Section):
    """`attenuation_limit`: how far the trained model may attenuate its input (hushkit.training.calibration).
    `db`: null (no limit), a number of dB, or `auto`: chosen after training on up to `utterances` validation
    utterances, the weakest of none and `choices_db` whose STOI is within `stoi_tolerance` of the best of them."""

    db: float | str | None = param(None, rule=Rule(lambda v: v == "auto" or (not isinstance(v, str) and v > 0),
                                                  "be `auto`, a number of dB > 0 or null"))
    choices_db: list[float] = param(factory=lambda: [20.0, 15.0, 10.0])
    stoi_tolerance: float = param(0.002, rule=at_least(0))
    utterances: int = param(48, rule=at_least(1))

    def check(self) -> None:
        if not self.choices_db or any(db <= 0 for db in self.choices_db):
            raise ParamsError("choices_db", f" must list numbers of dB > 0, got {self.choices_db}")


@dataclass(frozen=True)
class DynamicMixingParams(Section):
    """`dynamic_mixing`: the distributions each dynamically mixed example is drawn from (hushkit.training.dynamic)."""

    snr_db: SnrDistribution = param(factory=SnrDistribution)
    level_dbfs: Range = param(factory=lambda: Range(-35.0, -15.0))  # mixture RMS
    second_noise: float = param(0.0, rule=PROBABILITY)  # a second noise crop, at -6..0 dB relative to the first
    eq: float = param(0.0, rule=PROBABILITY)  # a random spectral tilt and shelving EQ
    bandlimit: float = param(0.0, rule=PROBABILITY)  # a random low-pass at 3.4-7 kHz
    clipping: float = param(0.0, rule=PROBABILITY)  # clipping the mixture at 25-80 % of its peak
    reverb: ReverbParams = param(factory=ReverbParams)
    babble: BabbleParams = param(factory=BabbleParams)

    def check(self) -> None:
        if self.level_dbfs.high > 0:
            raise ParamsError("level_dbfs.high", f" must be <= 0 dBFS, got {self.level_dbfs.high}")


# --- one architecture's settings ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig(Section):
    """One architecture's training settings (train.common with train.models.<arch> merged over it): the training
    loop's, then the train stage's. `segment` and `val_segment` are no params keys: the train stage sets them from
    the features stage's crops."""

    epochs: int = param(rule=at_least(1))
    batch_size: int = param(rule=at_least(1))
    steps_per_epoch: int = param(rule=at_least(1))
    lr: float = param(rule=above(0))
    weight_decay: float = param(0.0, rule=at_least(0))
    seed: int = 0
    grad_clip: float = param(5.0, rule=above(0))
    ema_decay: float = param(0.0, rule=within(0.0, 1.0, open_high=True))  # > 0: validate and keep a moving average
    loss: dict[str, float] = param(factory=lambda: {"spectral": 1.0})  # term → weight (hushkit.training.losses)
    schedule: LrSchedule = param(factory=LrSchedule)
    early_stopping: EarlyStoppingParams = param(factory=EarlyStoppingParams)
    mixup_alpha: float = param(0.0, rule=at_least(0, note="0: off"))  # > 0: mix examples pairwise, λ ~ Beta(α, α)
    swa: SwaParams = param(factory=SwaParams)
    checkpoint_every: int = param(1, rule=at_least(0, note="0: never"))  # epochs between resumable states
    adversarial: AdversarialParams = param(factory=AdversarialParams)
    grad_norms: GradNormParams = param(factory=GradNormParams)
    # `auto`: bfloat16 (or float16) autocast on a CUDA device, float32 elsewhere; bf16 / fp16 force it; fp32 is off
    mixed_precision: str | bool | None = param("auto", rule=one_of(*PRECISIONS, True, False))
    # The train stage's settings.
    model: str = ""  # the architecture: set from its name in train.architectures
    model_args: dict[str, Any] = param(factory=dict)  # the model's constructor arguments
    device: str = "auto"  # auto: cuda when available, else cpu
    audio_examples: int = param(3, rule=at_least(0))  # validation utterances logged as audio
    segment_seconds: float | None = param(None, rule=above(0, note="or null: features.segment_seconds"))
    mixing: str = param("fixed", rule=one_of(*MIXING_MODES))  # dynamic: fresh mixtures every step
    dynamic_mixing: DynamicMixingParams = param(factory=DynamicMixingParams)
    attenuation_limit: AttenuationLimitParams = param(factory=AttenuationLimitParams)
    threads: int | None = param(None, rule=at_least(1))  # torch threads (null: the machine's default)
    # Training processes (DistributedDataParallel, one per GPU): `auto` starts one per visible CUDA GPU (one on a
    # CPU); N > 1 starts N under torchrun on this host. Started by hand under torchrun, the stage uses what it is given.
    processes: int | str = param(1, rule=Rule(lambda v: v == "auto" or (not isinstance(v, str) and v >= 1),
                                              "be `auto` or a count >= 1"))
    cpu_isa: str = "native"  # the CPU instruction set the kernels may use (hushkit.training.determinism)
    segment: int | None = derived(None)  # samples per training crop
    # Samples from the start of each validation utterance that validation scores (0: `segment`).
    val_segment: int = derived(0)

    def check(self) -> None:
        if self.segment is not None and self.segment < 1:
            raise ParamsError("segment", f" must be >= 1, got {self.segment}")
        if self.val_segment < 0:
            raise ParamsError("val_segment", f" must be >= 0 (0: segment), got {self.val_segment}")
        if self.swa.start_epoch and self.ema_decay:
            raise ParamsError("swa.start_epoch", f" = {self.swa.start_epoch} and ema_decay = {self.ema_decay} "
                                                 "both average the weights; set ema_decay to 0 to use SWA")


@dataclass(frozen=True)
class TrainParams(Section):
    """`train`: every architecture listed is trained (train@<arch>); `common` holds every architecture's settings
    and `models.<arch>` overrides any of them. Settings may stay for models that are not listed (training a subset
    is one edit of `architectures`); every entry is checked."""

    architectures: list[str] = param(rule=nonempty())
    common: dict[str, Any] = param(factory=dict)
    models: dict[str, dict[str, Any] | None] = param(factory=dict)

    def check(self) -> None:
        for arch in dict.fromkeys([*self.architectures, *self.models]):
            self.config(arch)

    def config(self, arch: str, **derived_values: Any) -> TrainConfig:
        """`arch`'s TrainConfig; an error names the mapping that holds the offending key (train.models.<arch>
        where it sets it, train.common otherwise)."""
        from hushkit.params import deep_merge

        override = self.models.get(arch) or {}
        try:
            return TrainConfig.parse({**deep_merge(self.common, override), "model": arch}, **derived_values)
        except ParamsError as err:
            raise err.within(f"models.{arch}" if _holds(override, err.dotted_key) else "common") from None


def _holds(mapping: Mapping[str, Any], dotted: str) -> bool:
    node: Any = mapping
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
