"""`hushkit sweep` for real on the tiny profile: every trial a `dvc exp run --temp` of crced and an MLflow run, the
study in sqlite. Six trials from two processes working on one study at once, then a study built to prune a
hopeless trial."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import pipeline_repo, run_command

# Each trial costs a DVC experiment's set-up and the train stage's start (tens of seconds idle, minutes on a busy
# machine); the data stages run once, in the fixture.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]

SPACE = """
params:
  train.models.{arch}.lr: {low: 0.0005, high: 0.02, log: true}
  train.models.{arch}.epochs: {low: 1, high: 2}
sampler: {startup_trials: 3}
pruner: {kind: none}
"""
# A learning rate of 1000 leaves crced's validation loss several times the sane trial's after the first epoch.
HOPELESS = """
params:
  train.models.{arch}.lr: {low: 0.0001, high: 10000.0, log: true}
  train.models.{arch}.epochs: {choices: [2]}
first:
  - train.models.{arch}.lr: 0.002
  - train.models.{arch}.lr: 1000.0
pruner: {kind: median, startup_trials: 1}
"""
TRIAL_SECONDS = 900   # one trial's worst case on a loaded 2-core machine
TRAINING_STAGES = ("scan", "download", "rirs", "mix", "features", "train")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_params, mlflow_template_store) -> tuple[Path, dict]:
    """A committed copy of the working tree on the tiny profile training crced alone, its pipeline ending at the
    training (the sweep's objective, val_loss, needs no more), its data stages run and committed (dvc.lock), so that
    every trial's experiment restores them from DVC's cache and trains only."""
    params = copy.deepcopy(tiny_params)
    params["train"]["architectures"] = ["crced"]
    repo, env = pipeline_repo(tmp_path_factory.mktemp("sweep") / "repo", params)
    shutil.copy(mlflow_template_store, repo / "mlflow.db")   # already migrated: the first trial starts faster
    (repo / "dvc.lock").unlink(missing_ok=True)   # this checkout's runs, whose outputs are not in this repo's cache
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline["stages"] = {name: stage for name, stage in pipeline["stages"].items() if name in TRAINING_STAGES}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm"]
    run_command(["git", "add", "-A"], repo, env)
    run_command([*commit, "tiny"], repo, env)
    run_command(["dvc", "repro", "features", "rirs"], repo, env, timeout=1800)
    run_command(["git", "add", "-A"], repo, env)
    run_command([*commit, "data"], repo, env)
    return repo, env


def start_sweep(repo: Path, env: dict, space: str, study: str, trials: int) -> subprocess.Popen:
    space_file = repo.parent / f"{study}.yaml"
    space_file.write_text(space)
    return subprocess.Popen([sys.executable, "-m", "hushkit.cli", "sweep", str(space_file), "--arch", "crced",
                             "--trials", str(trials), "--study", study], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, trials: int) -> str:
    output, _ = process.communicate(timeout=TRIAL_SECONDS * trials)
    assert process.returncode == 0, output
    return output


def load_study(repo: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{repo / 'optuna.db'}")


def experiment_names(repo: Path, env: dict) -> set[str]:
    shown = json.loads(run_command(["dvc", "exp", "show", "--json"], repo, env).stdout)
    return {experiment["name"] for baseline in shown for experiment in baseline.get("experiments") or []}


def sweep_runs(repo: Path, study: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}", registry_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("hushkit")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`sweep.study` = '{study}'")


def test_six_trials_from_two_processes_at_once_land_in_one_study(repo):
    repo, env = repo
    # Both start together: one creates the study, the other joins it; each asks it for its next trial.
    first, second = start_sweep(repo, env, SPACE, "six", 4), start_sweep(repo, env, SPACE, "six", 2)
    outputs = finish(first, 4) + finish(second, 2)

    study = load_study(repo, "six")
    assert sorted(t.number for t in study.trials) == list(range(6))   # no trial lost, none run twice
    assert all(t.state.name == "COMPLETE" for t in study.trials), [(t.number, t.state) for t in study.trials]
    names = {t.user_attrs["dvc_experiment"] for t in study.trials}
    assert names == {f"sweep-six-{n}" for n in range(6)}
    assert names <= experiment_names(repo, env)   # `dvc exp show` lists every trial
    for trial in study.trials:   # each trial trained what it drew, and scored what its experiment recorded
        commit = trial.user_attrs["dvc_commit"]
        params = yaml.safe_load(run_command(["git", "show", f"{commit}:params.yaml"], repo, env).stdout)
        assert params["train"]["architectures"] == ["crced"]
        assert {f"train.models.crced.{k}": params["train"]["models"]["crced"][k] for k in ("lr", "epochs")} == \
            trial.params
        metrics = json.loads(run_command(["git", "show", f"{commit}:data/train/crced/metrics.json"], repo,
                                         env).stdout)
        assert trial.value == metrics["best_val_loss"]
        assert metrics["epochs"] == trial.params["train.models.crced.epochs"]
        assert len(trial.intermediate_values) == metrics["epochs"]   # every epoch reported to the study

    runs = [run for run in sweep_runs(repo, "six") if run.data.tags.get("stage") == "train"]
    assert sorted(int(run.data.tags["sweep.trial"]) for run in runs) == list(range(6))
    assert all(run.info.status == "FINISHED" and run.data.tags["sweep.state"] == "COMPLETE" for run in runs)
    parents = {run.info.run_id: run for run in sweep_runs(repo, "six") if run.data.tags.get("stage") == "sweep"}
    assert len(parents) == 2 and {run.data.tags["mlflow.parentRunId"] for run in runs} == set(parents)

    best = study.best_trial
    assert f"best: trial {best.number} (experiment sweep-six-{best.number})" in outputs
    assert f"dvc exp apply sweep-six-{best.number}" in outputs
    assert f"-S ++train.models.crced.lr={best.params['train.models.crced.lr']!r}" in outputs
    run_command(["dvc", "exp", "apply", f"sweep-six-{best.number}"], repo, env)
    applied = yaml.safe_load((repo / "params.yaml").read_text())["train"]["models"]["crced"]
    assert applied["lr"] == best.params["train.models.crced.lr"]
    run_command(["git", "reset", "-q", "--hard"], repo, env)   # params.yaml and dvc.lock back for the next test


def test_a_hopeless_trial_is_pruned_after_its_first_epoch(repo):
    repo, env = repo
    output = finish(start_sweep(repo, env, HOPELESS, "hopeless", 2), 2)

    sane, hopeless = sorted(load_study(repo, "hopeless").trials, key=lambda t: t.number)
    assert sane.state.name == "COMPLETE" and sane.params["train.models.crced.lr"] == 0.002
    assert hopeless.state.name == "PRUNED" and hopeless.params["train.models.crced.lr"] == 1000.0
    assert list(hopeless.intermediate_values) == [1]   # stopped after epoch 1 of 2
    assert hopeless.intermediate_values[1] > 2 * sane.intermediate_values[1]
    assert "trial 1: pruned after epoch 1" in output
    log = (repo / ".hushkit" / "sweep" / "hopeless" / "trial-1.log").read_text()
    assert "train: pruned by sweep study 'hopeless' (trial 1) after epoch 1 of 2" in log
    assert "sweep-hopeless-1" not in experiment_names(repo, env)   # a pruned experiment leaves no commit
    [run] = [run for run in sweep_runs(repo, "hopeless") if run.data.tags.get("sweep.trial") == "1"]
    assert run.info.status == "FAILED" and run.data.tags["sweep.state"] == "PRUNED"
