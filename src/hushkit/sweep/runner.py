"""A sweep: an Optuna study (TPE) whose trials are DVC experiments of one architecture, run from this process until
it has run its share; other processes, on this host or others sharing the storage, may work on the same study at
once (each asks the study for its next trial; TPE's constant liar keeps them from all trying the same point).

Each trial is one `dvc exp run --temp` (hushkit.sweep.trials) whose train stage reports every epoch's validation
loss to the trial (hushkit.sweep.pruning) and logs an MLflow run, a child of this process's `sweep-<study>` run,
tagged `sweep.study`, `sweep.trial` and, once it ends, `sweep.state`. A trial's log is kept in
.hushkit/sweep/<study>/trial-<n>.log.
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hushkit import tracking
from hushkit.errors import UserError
from hushkit.sweep import trials as dvc_trials
from hushkit.sweep.pruning import PRUNED_ATTR, make_pruner, trial_env
from hushkit.sweep.space import MISSING, SearchSpace, check_against_params, load_space, lookup
from hushkit.sweep.storage import import_optuna, open_storage, redacted, storage_url

IDENTITY_ATTR = "hushkit.sweep"          # on the study: architecture, metric and search space it was started for
EXPERIMENT_ATTR = "dvc_experiment"       # on a trial: its DVC experiment's name
COMMIT_ATTR = "dvc_commit"               # on a completed trial: its experiment's commit
HEARTBEAT_SECONDS = 30                   # a trial of a process gone silent for 3x this is marked failed
LOGS = Path(".hushkit") / "sweep"


class TrialFailed(Exception):
    """A trial whose experiment failed (not pruned): recorded as FAIL, and the sweep goes on."""


class SweepAborted(UserError):
    """The sweep cannot go on (too many failures in a row, an experiment name taken): the message says why."""


@dataclass
class Sweep:
    """One process's part of a study, and what it needs to run a trial."""

    repo: Path
    space: SearchSpace
    arch: str
    objective: dvc_trials.Metric
    study_name: str
    storage: str
    params: dict[str, Any]
    max_failures: int = 3
    echo: Callable[[str], None] = print
    parent_run: str | None = None
    failures_in_a_row: int = 0
    ran: list[tuple[int, str]] = field(default_factory=list)   # (trial number, state) of this process's trials


def run_sweep(space_file: str | Path, *, arch: str, trials: int, study: str | None = None, storage: str | None = None,
              metric: str = "val_loss", repo: str | Path = ".", max_failures: int = 3,
              echo: Callable[[str], None] = print) -> Any:
    """Run `trials` trials of the study (created, or joined when it exists) and return the optuna Study; prints a
    line per trial and, at the end, the best trial as a ready command (`best_trial_report`)."""
    from hushkit.models import available_models
    from hushkit.params import load_params

    repo = Path(repo).resolve()
    dvc_trials.check_repository(repo)
    if arch not in available_models():
        raise UserError(f"--arch {arch!r}: not an architecture (known: {', '.join(sorted(available_models()))})")
    params = load_params(repo / "params.yaml")
    space = load_space(space_file, arch)
    check_against_params(space, params, arch, "params.yaml")
    objective = dvc_trials.metric(metric)
    study_name = study or f"{arch}-{Path(space_file).stem}"
    dvc_trials.check_study_name(study_name)
    sweep = Sweep(repo, space, arch, objective, study_name, storage_url(storage, repo), params, max_failures, echo)
    optuna_study, storage_backend = open_study(sweep)
    finished = sum(trial.state.is_finished() for trial in optuna_study.trials)
    echo(f"sweep: study {study_name!r} in {redacted(sweep.storage)} ({finished} trials finished so far): {trials} "
         f"trial(s) of {arch} from this process, {objective.direction} {objective.name}")
    client, sweep.parent_run = start_parent_run(sweep, Path(space_file))
    status = "FAILED"
    # Every trial gets its own line here; optuna's would repeat them (with a traceback for each failed trial).
    logging = import_optuna().logging
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        optuna_study.optimize(lambda trial: run_trial(sweep, trial, storage_backend, client), n_trials=trials,
                              catch=(TrialFailed,))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        logging.set_verbosity(verbosity)
        end_parent_run(client, sweep, optuna_study, status)
    echo(best_trial_report(optuna_study, sweep))
    return optuna_study


def make_sampler(space: SearchSpace, seed: int | None) -> Any:
    optuna = import_optuna()
    return optuna.samplers.TPESampler(n_startup_trials=space.startup_trials, seed=seed, constant_liar=True)


def open_study(sweep: Sweep) -> tuple[Any, Any]:
    """The study, created (with the space's `first` trials queued) or loaded; a study started for another
    architecture, metric or search space is refused. Returns it and its storage."""
    optuna = import_optuna()
    storage = open_storage(sweep.storage, heartbeat_seconds=HEARTBEAT_SECONDS)
    maximize = sweep.objective.direction == "maximize"
    settings = {"sampler": make_sampler(sweep.space, sweep.space.seed),
                "pruner": make_pruner(sweep.space.pruner, maximize)}
    identity = {"architecture": sweep.arch, "metric": sweep.objective.name, "space": sweep.space.identity()}
    try:
        study = optuna.create_study(storage=storage, study_name=sweep.study_name,
                                    direction=sweep.objective.direction, **settings)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=sweep.study_name, storage=storage, **settings)
        stored = _stored_identity(study)
        if stored != identity:
            raise UserError(f"study {sweep.study_name!r} in {redacted(sweep.storage)} was started for "
                            f"{_describe(stored)}, not {_describe(identity)} ({sweep.space.source}): give another "
                            "--study") from None
        return study, storage
    study.set_user_attr(IDENTITY_ATTR, identity)
    for point in sweep.space.first:
        study.enqueue_trial(point)
    return study, storage


def _stored_identity(study: Any, wait_seconds: float = 10.0) -> Any:
    """The study's identity; a study created a moment ago by another process may not carry it yet."""
    deadline = time.monotonic() + wait_seconds
    while True:
        stored = study.user_attrs.get(IDENTITY_ATTR)
        if stored is not None or time.monotonic() > deadline:
            return stored
        time.sleep(0.5)


def _describe(identity: Any) -> str:
    if not isinstance(identity, dict):
        return "something other than `hushkit sweep`"
    searched = ", ".join(d["path"] for d in identity["space"]["params"])
    return f"{identity['architecture']} by {identity['metric']} over {searched}"


def run_trial(sweep: Sweep, trial: Any, storage: Any, client: Any) -> float:
    """One trial: its params from the sampler, its DVC experiment, its score (or TrialPruned / TrialFailed)."""
    optuna = import_optuna()
    if sweep.space.seed is not None:   # trial n draws from seed + n: reproducible, and distinct across processes
        trial.study.sampler = make_sampler(sweep.space, sweep.space.seed + trial.number)
    values = sweep.space.suggest(trial)
    name = dvc_trials.experiment_name(sweep.study_name, trial.number)
    if dvc_trials.experiment_commit(sweep.repo, name):
        raise SweepAborted(f"a DVC experiment named {name} exists already (from an earlier study named "
                           f"{sweep.study_name!r}?): `dvc exp remove {name}` or give another --study")
    trial.set_user_attr(EXPERIMENT_ATTR, name)
    shown = ", ".join(f"{path}={value!r}" for path, value in values.items())
    sweep.echo(f"trial {trial.number} ({name}): {shown}")
    env = {**trial_env(storage=sweep.storage, study=sweep.study_name, trial_id=trial._trial_id, number=trial.number,
                       pruner=sweep.space.pruner, maximize=sweep.objective.direction == "maximize"),
           tracking.RUN_TAGS_ENV: json.dumps({"sweep.study": sweep.study_name, "sweep.trial": str(trial.number)})}
    if sweep.parent_run:
        env[tracking.PARENT_ENV] = sweep.parent_run
    log = sweep.repo / LOGS / sweep.study_name / f"trial-{trial.number}.log"
    started = time.monotonic()
    code = dvc_trials.run_experiment(sweep.repo, name, dvc_trials.overrides(sweep.arch, values),
                                     sweep.objective.stage.format(arch=sweep.arch), env, log)
    took = f"{time.monotonic() - started:.0f} s"
    if code != 0:
        pruned_at = storage.get_trial_user_attrs(trial._trial_id).get(PRUNED_ATTR)
        if pruned_at is not None:
            sweep.failures_in_a_row = 0
            _finish(sweep, client, trial.number, "PRUNED")
            sweep.echo(f"trial {trial.number}: pruned after epoch {pruned_at} ({took})")
            raise optuna.TrialPruned(f"pruned after epoch {pruned_at}")
        _finish(sweep, client, trial.number, "FAIL")
        sweep.failures_in_a_row += 1
        sweep.echo(f"trial {trial.number}: failed (dvc exp run exited {code}, {took}; log {log}):\n"
                   f"{dvc_trials.last_lines(log)}")
        if sweep.failures_in_a_row >= sweep.max_failures:
            raise SweepAborted(f"{sweep.failures_in_a_row} trials failed in a row; the last one's log: {log}")
        raise TrialFailed(f"dvc exp run exited {code}")
    commit = dvc_trials.experiment_commit(sweep.repo, name)
    if commit is None:
        raise SweepAborted(f"dvc exp run succeeded but left no experiment {name} (log {log})")
    score = dvc_trials.read_score(sweep.repo, commit, sweep.objective, sweep.arch)
    trial.set_user_attr(COMMIT_ATTR, commit)
    sweep.failures_in_a_row = 0
    restored = not storage.get_trial(trial._trial_id).intermediate_values
    if restored:
        # DVC restored the train stage from its run cache (these params ran before): no epoch was reported, so the
        # recorded history stands in for them, and no new MLflow run was logged.
        maximize = sweep.objective.direction == "maximize"
        for epoch, loss in dvc_trials.validation_losses(sweep.repo, commit, sweep.arch).items():
            trial.report(-loss if maximize else loss, epoch)
    _finish(sweep, client, trial.number, "COMPLETE")
    sweep.echo(f"trial {trial.number}: {sweep.objective.name} {score:.5g} ({took}"
               f"{'; trained before, restored from the run cache' if restored else ''})")
    return score


def _finish(sweep: Sweep, client: Any, number: int, state: str) -> None:
    sweep.ran.append((number, state))
    if client is None:
        return
    found = client.search_runs(
        [client.get_experiment_by_name(sweep.params.get("mlflow", {}).get("experiment", "hushkit")).experiment_id],
        filter_string=f"tags.`sweep.study` = '{sweep.study_name}' and tags.`sweep.trial` = '{number}'")
    for run in found:
        client.set_tag(run.info.run_id, "sweep.state", state)


# --- the MLflow run of this process's part of the study -----------------------------------------------------------
def start_parent_run(sweep: Sweep, space_file: Path) -> tuple[Any, str]:
    from hushkit.errors import import_extra

    import_extra("mlflow", "pipeline", "a hyper-parameter sweep's tracking")
    mlflow = tracking.setup(sweep.params.get("mlflow", {}), cwd=sweep.repo)
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(sweep.params.get("mlflow", {}).get("experiment", "hushkit"))
    run = client.create_run(experiment.experiment_id, run_name=f"sweep-{sweep.study_name}",
                            tags={"stage": "sweep", "sweep.study": sweep.study_name, "architecture": sweep.arch,
                                  "sweep.metric": sweep.objective.name, "git_commit": tracking.git_commit()})
    client.log_text(run.info.run_id, space_file.read_text(encoding="utf-8"), "search_space.yaml")
    return client, run.info.run_id


def end_parent_run(client: Any, sweep: Sweep, study: Any, status: str) -> None:
    if client is None or sweep.parent_run is None:
        return
    states = [state for _, state in sweep.ran]
    client.log_metric(sweep.parent_run, "trials_complete", states.count("COMPLETE"))
    client.log_metric(sweep.parent_run, "trials_pruned", states.count("PRUNED"))
    client.log_metric(sweep.parent_run, "trials_failed", states.count("FAIL"))
    best = _best(study)
    if best is not None:
        client.log_metric(sweep.parent_run, f"best_{sweep.objective.name}", best.value)
        client.set_tag(sweep.parent_run, "sweep.best_trial", str(best.number))
    client.set_terminated(sweep.parent_run, status)


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:   # no trial has completed
        return None


# --- the result -----------------------------------------------------------------------------------------------------
def best_trial_report(study: Any, sweep: Sweep) -> str:
    """The study's trials by state, and its best trial as a params diff and the commands that apply it."""
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    lines = [f"study {sweep.study_name!r}: {len(study.trials)} trials ("
             + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")"]
    best = _best(study)
    if best is None:
        return "\n".join(lines + ["no trial has completed yet: nothing to apply"])
    name = best.user_attrs.get(EXPERIMENT_ATTR, "?")
    lines.append(f"best: trial {best.number} (experiment {name}), {sweep.objective.name} {best.value:.5g}")
    for path, value in best.params.items():
        lines.append(f"  {path}: {_current(sweep.params, path, sweep.arch)} -> {value!r}")
    settings = " ".join(shlex.quote(arg) if arg != "-S" else arg
                        for arg in dvc_trials.overrides(sweep.arch, best.params)[2:])
    here = dvc_trials.experiment_commit(sweep.repo, name) is not None
    lines.append(f"apply it:  dvc exp apply {name}" + ("" if here else "   (it ran on another host: "
                                                       f"`dvc exp pull <remote> {name}` first)")
                 + f"   (params.yaml, dvc.lock and metrics; train.architectures then lists {sweep.arch} alone)")
    lines.append(f"or set its params and rerun everything:  dvc exp run {settings}")
    return "\n".join(lines)


def _current(params: dict[str, Any], path: str, arch: str) -> str:
    """`path`'s value in the workspace's params (an architecture's unset key: what train.common gives it)."""
    value = lookup(params, path)
    prefix = f"train.models.{arch}."
    if value is MISSING and path.startswith(prefix):
        value = lookup(params, "train.common." + path[len(prefix):])
        return "(unset)" if value is MISSING else f"{value!r} (train.common)"
    return "(unset)" if value is MISSING else repr(value)
