"""The study around the trials (no DVC here; tests/sweep/test_sweep_e2e.py runs real ones): created once with its
first trials queued, joined by later processes only for the same search, and its best trial printed as commands."""
from __future__ import annotations

import subprocess

import pytest
from typer.testing import CliRunner

from hushkit.cli import app
from hushkit.errors import UserError
from hushkit.sweep import trials as dvc_trials
from hushkit.sweep.runner import EXPERIMENT_ATTR, Sweep, best_trial_report, open_study
from hushkit.sweep.space import load_space

# The studies here are driven by hand (ask/tell), not by Study.optimize, whose heartbeats the storage is set up for.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")

SPACE = """
params:
  train.models.{arch}.lr: {low: 0.0005, high: 0.02, log: true}
  train.models.{arch}.epochs: {low: 1, high: 3}
first:
  - train.models.{arch}.lr: 0.002
"""
PARAMS = {"train": {"architectures": ["crced"], "common": {"epochs": 4, "lr": 0.004},
                    "models": {"crced": {"lr": 0.002}}}}


def make_sweep(tmp_path, space_text: str = SPACE, metric: str = "val_loss", name: str = "unit") -> Sweep:
    space_file = tmp_path / "space.yaml"
    space_file.write_text(space_text)
    return Sweep(repo=tmp_path, space=load_space(space_file, "crced"), arch="crced",
                 objective=dvc_trials.metric(metric), study_name=name,
                 storage=f"sqlite:///{tmp_path / 'optuna.db'}", params=PARAMS, echo=lambda line: None)


def test_the_study_is_created_once_with_its_first_trials_queued(tmp_path):
    study, _ = open_study(make_sweep(tmp_path))
    assert [t.state.name for t in study.trials] == ["WAITING"]
    joined, _ = open_study(make_sweep(tmp_path))   # another process: the same study, nothing queued again
    assert len(joined.trials) == 1 and joined._study_id == study._study_id
    assert joined.ask().params == {} and joined.trials[0].system_attrs["fixed_params"] == \
        {"train.models.crced.lr": 0.002}


@pytest.mark.parametrize("change, problem", [
    (lambda text: text.replace("high: 3", "high: 4"), "crced by val_loss over train.models.crced.lr, "
                                                      "train.models.crced.epochs, not crced by val_loss"),
    (None, "not crced by pesq"),
])
def test_a_study_started_for_another_search_is_refused(tmp_path, change, problem):
    open_study(make_sweep(tmp_path))
    other = make_sweep(tmp_path, change(SPACE) if change else SPACE, metric="val_loss" if change else "pesq")
    with pytest.raises(UserError, match="study 'unit' in sqlite:///.* was started for ") as caught:
        open_study(other)
    assert problem in str(caught.value) and "give another --study" in str(caught.value)


def test_the_best_trial_is_a_params_diff_and_ready_commands(tmp_path):
    import optuna

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    sweep = make_sweep(tmp_path, SPACE.replace("first:\n  - train.models.{arch}.lr: 0.002\n", ""))
    study, _ = open_study(sweep)
    for lr, epochs, loss in [(0.001, 1, 0.5), (0.0042, 3, 0.25), (0.01, 2, None)]:
        study.enqueue_trial({"train.models.crced.lr": lr, "train.models.crced.epochs": epochs})
        trial = study.ask()
        sweep.space.suggest(trial)
        trial.set_user_attr(EXPERIMENT_ATTR, dvc_trials.experiment_name("unit", trial.number))
        study.tell(trial, loss, state=None if loss is not None else optuna.trial.TrialState.PRUNED)
    report = best_trial_report(study, sweep)
    assert "study 'unit': 3 trials (2 complete, 1 pruned)" in report
    assert "best: trial 1 (experiment sweep-unit-1), val_loss 0.25" in report
    assert "  train.models.crced.lr: 0.002 -> 0.0042" in report
    assert "  train.models.crced.epochs: 4 (train.common) -> 3" in report
    assert "dvc exp apply sweep-unit-1   (it ran on another host: `dvc exp pull <remote> sweep-unit-1` first)" in \
        report   # no experiment of that name here
    assert "dvc exp run -S ++train.models.crced.lr=0.0042 -S ++train.models.crced.epochs=3" in report


def test_a_study_with_no_completed_trial_says_so(tmp_path):
    sweep = make_sweep(tmp_path)
    study, _ = open_study(sweep)
    assert best_trial_report(study, sweep).endswith("no trial has completed yet: nothing to apply")


runner = CliRunner()


def test_the_command_refuses_a_folder_that_is_no_dvc_project_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "space.yaml").write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sweep", "space.yaml", "--arch", "crced"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path}: not a DVC project (no .dvc/ or dvc.yaml): run the sweep " \
                                    "from the repository root"


@pytest.fixture
def dvc_project(tmp_path, monkeypatch):
    """An empty DVC project with a commit, as the current folder."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("train: {architectures: [crced], common: {epochs: 1, batch_size: 2, "
                                          "steps_per_epoch: 1, lr: 0.001}}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_command_names_a_bad_space_file_and_its_entry(dvc_project):
    (dvc_project / "space.yaml").write_text("params:\n  train.models.{arch}.lr: {low: 0.1, high: 0.01}\n")
    result = runner.invoke(app, ["sweep", "space.yaml", "--arch", "crced"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: space.yaml: params.train.models.{arch}.lr: low 0.1 is not below high 0.01"
    result = runner.invoke(app, ["sweep", "space.yaml", "--arch", "nonet"])
    assert result.exit_code == 2 and "--arch 'nonet': not an architecture (known: " in result.output


def test_the_command_without_optuna_names_the_extra_in_one_line(dvc_project, monkeypatch):
    import sys

    (dvc_project / "space.yaml").write_text(SPACE)
    monkeypatch.setitem(sys.modules, "optuna", None)   # as if not installed
    result = runner.invoke(app, ["sweep", "space.yaml", "--arch", "crced"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "a hyper-parameter sweep needs the package optuna" in result.output
    assert "pip install 'hushkit[pipeline]'" in result.output
