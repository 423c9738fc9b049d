"""The train stage's side of a sweep trial: each epoch's validation loss reported to the study, a hopeless trial
stopped with one line, nothing at all outside a sweep (no DVC: the trials are made directly in a study)."""
from __future__ import annotations

import math

import optuna
import pytest

from hushkit.errors import UserError
from hushkit.sweep.pruning import PRUNED_ATTR, TRIAL_ENV, PrunerSpec, TrialPruned, trial_env, trial_reporter


@pytest.fixture
def storage(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def study_with_finished_trial(storage: str, losses: list[float], direction: str = "minimize") -> optuna.Study:
    """A study holding one completed trial that reported `losses` (epochs 1, 2, ...)."""
    study = optuna.create_study(study_name="unit", storage=storage, direction=direction)
    done = study.ask()
    for epoch, loss in enumerate(losses, start=1):
        done.report(-loss if direction == "maximize" else loss, epoch)
    study.tell(done, losses[-1])
    return study


def reporter_for(monkeypatch, study: optuna.Study, storage: str, pruner: PrunerSpec, epochs: int,
                 maximize: bool = False):
    trial = study.ask()
    monkeypatch.setenv(TRIAL_ENV, trial_env(storage=storage, study=study.study_name, trial_id=trial._trial_id,
                                            number=trial.number, pruner=pruner, maximize=maximize)[TRIAL_ENV])
    return trial, trial_reporter(epochs)


def stored(study: optuna.Study, trial) -> optuna.trial.FrozenTrial:
    return study._storage.get_trial(trial._trial_id)


def test_outside_a_sweep_there_is_no_reporter(monkeypatch):
    monkeypatch.delenv(TRIAL_ENV, raising=False)
    assert trial_reporter(epochs=3) is None


def test_every_epochs_validation_loss_reaches_the_trial(monkeypatch, storage):
    study = study_with_finished_trial(storage, [0.5, 0.4, 0.3])
    trial, report = reporter_for(monkeypatch, study, storage, PrunerSpec("median", startup_trials=1), epochs=3)
    for epoch, loss in [(1, 0.45), (2, 0.35), (3, 0.25)]:   # better than the median after every epoch
        report({"val_loss": loss, "train_loss": 9.0}, epoch)
    assert stored(study, trial).intermediate_values == {1: 0.45, 2: 0.35, 3: 0.25}
    assert PRUNED_ATTR not in stored(study, trial).user_attrs


def test_a_hopeless_trial_is_pruned_with_one_line_naming_the_study(monkeypatch, storage):
    study = study_with_finished_trial(storage, [0.5, 0.4, 0.3])
    trial, report = reporter_for(monkeypatch, study, storage, PrunerSpec("median", startup_trials=1), epochs=3)
    with pytest.raises(TrialPruned) as caught:
        report({"val_loss": 0.9}, 1)
    message = str(caught.value)
    assert "sweep study 'unit' (trial 1) after epoch 1 of 3: validation loss 0.9000" in message and "\n" not in message
    assert isinstance(caught.value, UserError)   # a stage prints it as one line and exits non-zero
    assert stored(study, trial).user_attrs[PRUNED_ATTR] == 1   # how the sweep tells pruned from failed


def test_no_pruning_before_enough_trials_finished_nor_in_the_warmup_nor_after_the_last_epoch(monkeypatch, storage):
    study = study_with_finished_trial(storage, [0.5, 0.4])
    _, waits = reporter_for(monkeypatch, study, storage, PrunerSpec("median", startup_trials=2), epochs=2)
    waits({"val_loss": 0.9}, 1)   # one trial finished, two wanted
    _, warming = reporter_for(monkeypatch, study, storage, PrunerSpec("median", 1, warmup_epochs=1), epochs=2)
    warming({"val_loss": 0.9}, 1)
    _, last = reporter_for(monkeypatch, study, storage, PrunerSpec("median", startup_trials=1), epochs=1)
    last({"val_loss": 0.9}, 1)    # its one epoch trained: its score is worth more than stopping now
    _, never = reporter_for(monkeypatch, study, storage, PrunerSpec("none"), epochs=2)
    never({"val_loss": math.nan}, 1)
    _, pruned = reporter_for(monkeypatch, study, storage, PrunerSpec("median", 1, warmup_epochs=1), epochs=3)
    pruned({"val_loss": 0.9}, 1)
    with pytest.raises(TrialPruned, match="after epoch 2 of 3"):
        pruned({"val_loss": 0.9}, 2)


def test_a_threshold_prunes_a_loss_above_it_or_not_a_number(monkeypatch, storage):
    study = optuna.create_study(study_name="unit", storage=storage)
    _, report = reporter_for(monkeypatch, study, storage, PrunerSpec("threshold", upper=0.5), epochs=3)
    report({"val_loss": 0.4}, 1)
    with pytest.raises(TrialPruned, match="validation loss not a number"):
        report({"val_loss": math.nan}, 2)
    _, report = reporter_for(monkeypatch, study, storage, PrunerSpec("threshold", upper=0.5), epochs=3)
    with pytest.raises(TrialPruned, match="validation loss 0.6000 cannot catch up"):
        report({"val_loss": 0.6}, 1)


@pytest.mark.parametrize("pruner", [PrunerSpec("median", startup_trials=1), PrunerSpec("threshold", upper=0.5)])
def test_a_study_that_maximises_a_test_score_still_prunes_the_higher_loss(monkeypatch, storage, pruner):
    study = study_with_finished_trial(storage, [0.3, 0.2], direction="maximize")
    trial, report = reporter_for(monkeypatch, study, storage, pruner, epochs=2, maximize=True)
    report({"val_loss": 0.25}, 1)   # a better loss than the finished trial's: goes on
    assert stored(study, trial).intermediate_values == {1: -0.25}
    _, report = reporter_for(monkeypatch, study, storage, pruner, epochs=2, maximize=True)
    with pytest.raises(TrialPruned):
        report({"val_loss": 0.9}, 1)


@pytest.mark.parametrize("value, problem", [("{not json", "not the JSON object a sweep sets"),
                                            ("[1, 2]", "not the JSON object a sweep sets"),
                                            ('{"storage": "sqlite://"}', "lacks maximize, number, pruner")])
def test_a_malformed_trial_environment_is_one_line(monkeypatch, value, problem):
    monkeypatch.setenv(TRIAL_ENV, value)
    with pytest.raises(UserError, match=f"^{TRIAL_ENV}: {problem}"):
        trial_reporter(epochs=1)
