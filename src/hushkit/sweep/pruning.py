"""Pruning: a sweep's trial reports its validation loss after every epoch, and stops when the study's pruner says
it cannot catch up with the trials before it.

The sweep (hushkit.sweep.runner) starts each trial's `dvc exp run` with TRIAL_ENV set to where the trial lives
(storage, study, trial id) and how to prune; the train stage then builds a `TrialReporter` (`trial_reporter`) and
calls it with each epoch's metrics. A trial to prune raises `TrialPruned`: the train stage exits non-zero with
that one line, the DVC experiment fails, and the sweep, finding PRUNED_ATTR on the trial, records it as pruned
(not failed). Outside a sweep (TRIAL_ENV unset) nothing here runs and Optuna is never imported. Under torchrun
rank 0 alone reports; when it stops, torchrun ends the other processes with it.

The pruner compares validation losses: in a study that maximises a test score, it sees −val_loss (a threshold
then bounds −val_loss from below), so "better" points the study's way.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from hushkit.errors import UserError
from hushkit.sweep.storage import import_optuna, open_storage

TRIAL_ENV = "HUSHKIT_SWEEP_TRIAL"
PRUNED_ATTR = "hushkit.pruned_at_epoch"   # set on a trial by the process that pruned it
PRUNERS = ("median", "threshold", "none")


@dataclass(frozen=True)
class PrunerSpec:
    """How trials are pruned: `median` stops a trial whose validation loss after an epoch is worse than the median
    of the finished trials' after the same epoch (once `startup_trials` have finished); `threshold` stops one whose
    validation loss exceeds `upper`; `none` never stops one. A validation loss that is not a number is always
    pruned (except by `none`). A trial trains `warmup_epochs` epochs before it may be pruned, and is never pruned
    after its last epoch (its score is then worth more to the sampler than the saving)."""

    kind: str = "median"
    startup_trials: int = 5
    warmup_epochs: int = 0
    upper: float | None = None


def make_pruner(spec: PrunerSpec, maximize: bool) -> Any:
    optuna = import_optuna()
    if spec.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials)
    if spec.kind == "threshold":
        bound = float(spec.upper)   # a maximising study sees -val_loss: the bound flips with it
        return optuna.pruners.ThresholdPruner(**({"lower": -bound} if maximize else {"upper": bound}))
    return optuna.pruners.NopPruner()


class TrialPruned(UserError):
    """The sweep's pruner stopped this trial (the message names the study, trial, epoch and loss)."""


def trial_env(*, storage: str, study: str, trial_id: int, number: int, pruner: PrunerSpec,
              maximize: bool) -> dict[str, str]:
    """The environment that makes a train stage report to (and be pruned by) this trial."""
    settings = {"storage": storage, "study": study, "trial_id": trial_id, "number": number,
                "pruner": asdict(pruner), "maximize": maximize}
    return {TRIAL_ENV: json.dumps(settings)}


class TrialReporter:
    """Reports each epoch's validation loss to one trial of a study and raises TrialPruned when it should stop."""

    def __init__(self, settings: dict[str, Any], epochs: int):
        optuna = import_optuna()
        self.study_name, self.number, self.epochs = settings["study"], int(settings["number"]), epochs
        self.pruner = PrunerSpec(**settings["pruner"])
        self.maximize = bool(settings["maximize"])
        study = optuna.load_study(study_name=self.study_name, storage=open_storage(settings["storage"]),
                                  pruner=make_pruner(self.pruner, self.maximize))
        self.trial = optuna.trial.Trial(study, int(settings["trial_id"]))

    def __call__(self, metrics: dict[str, float], epoch: int) -> None:
        val_loss = float(metrics["val_loss"])
        self.trial.report(-val_loss if self.maximize else val_loss, epoch)
        if epoch <= self.pruner.warmup_epochs or epoch >= self.epochs or not self.trial.should_prune():
            return
        self.trial.set_user_attr(PRUNED_ATTR, epoch)
        loss = "not a number" if math.isnan(val_loss) else f"{val_loss:.4f}"
        raise TrialPruned(f"pruned by sweep study {self.study_name!r} (trial {self.number}) after epoch {epoch} of "
                          f"{self.epochs}: validation loss {loss} cannot catch up ({self.pruner.kind} pruner)")


def trial_reporter(epochs: int) -> TrialReporter | None:
    """The reporter of the sweep trial this process trains for (TRIAL_ENV), or None outside a sweep."""
    raw = os.environ.get(TRIAL_ENV)
    if not raw:
        return None
    try:
        settings = json.loads(raw)
    except ValueError as err:
        raise UserError(f"{TRIAL_ENV}: not the JSON object a sweep sets ({err})") from None
    if not isinstance(settings, dict):
        raise UserError(f"{TRIAL_ENV}: not the JSON object a sweep sets")
    missing = {"storage", "study", "trial_id", "number", "pruner", "maximize"} - set(settings)
    if missing:
        raise UserError(f"{TRIAL_ENV}: lacks {', '.join(sorted(missing))} (set by `hushkit sweep`, not by hand)")
    return TrialReporter(settings, epochs)
