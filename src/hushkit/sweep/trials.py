"""One sweep trial as a DVC experiment: `dvc exp run --temp` with the trial's params as `-S` overrides, run up to
the stage whose metrics file holds the objective, and the score read back from the experiment's commit.

`--temp` runs each experiment in its own copy of the repository (under .dvc/tmp/exps/), so the workspace is never
touched and several sweep processes run trials at once; the stages it does not change (the data, the other
architectures) are restored from DVC's cache. The copy starts from HEAD plus the workspace's uncommitted changes
(params.yaml included), and the experiment's commit holds its params, dvc.lock and metrics files (`dvc exp show`).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hushkit.errors import UserError
from hushkit.experiments import hydra_value


@dataclass(frozen=True)
class Metric:
    """An objective: `keys` into the metrics file `file` ({arch}: the swept architecture), which `stage` writes."""

    name: str
    file: str
    keys: tuple[str, ...]
    direction: str   # minimize | maximize
    stage: str

    def path(self, arch: str) -> str:
        return self.file.format(arch=arch)


TEST_SCORES = ("pesq", "stoi", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovr")
# The validation loss costs a training; a test score (the condition-weighted mean the summary ranks by) also the
# scoring of the test split.
METRICS = {
    "val_loss": Metric("val_loss", "data/train/{arch}/metrics.json", ("best_val_loss",), "minimize", "train@{arch}"),
    **{name: Metric(name, "data/evaluate/{arch}/metrics.json", ("weighted", name), "maximize", "evaluate@{arch}")
       for name in TEST_SCORES},
}
# The train stage's per-epoch figures (a DVC output): the validation losses of a trial DVC restored from its run cache.
HISTORY = "data/train/{arch}/history.csv"
EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def metric(name: str) -> Metric:
    if name not in METRICS:
        raise UserError(f"--metric {name!r}: not one of {', '.join(METRICS)}")
    return METRICS[name]


def experiment_name(study: str, number: int) -> str:
    return f"sweep-{study}-{number}"


def check_study_name(study: str) -> None:
    """A study names its trials' experiments (git refs): letters, digits, '_' and '-'."""
    if not EXPERIMENT_NAME.match(study):
        raise UserError(f"--study {study!r}: use letters, digits, '_' and '-' (it names the trials' DVC "
                        "experiments), starting with a letter or digit")


def overrides(arch: str, values: dict[str, Any]) -> list[str]:
    """The `-S` arguments of a trial: the swept architecture alone, and each searched key's value."""
    args = ["-S", f"train.architectures=[{arch}]"]
    for path, value in values.items():
        args += ["-S", f"++{path}={hydra_value(value)}"]
    return args


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"{repo}: git {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def check_repository(repo: Path) -> None:
    """`dvc exp run` needs the dvc command, and a git repository with a commit and DVC set up in it."""
    import shutil

    from hushkit.errors import MissingExtraError

    if shutil.which("dvc") is None:
        raise MissingExtraError("a hyper-parameter sweep runs `dvc exp run`, and no dvc command is on PATH: "
                                "pip install 'hushkit[pipeline]'")
    if not (repo / ".dvc").is_dir() or not (repo / "dvc.yaml").is_file():
        raise UserError(f"{repo}: not a DVC project (no .dvc/ or dvc.yaml): run the sweep from the repository root")
    if subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo, capture_output=True).returncode:
        raise UserError(f"{repo}: no git commit yet: DVC experiments start from one (git commit first)")


def experiment_commit(repo: Path, name: str) -> str | None:
    """The newest commit of the experiment `name` (any baseline), or None."""
    found = git(repo, "for-each-ref", "--sort=-committerdate", "--format=%(objectname)", f"refs/exps/*/*/{name}")
    return found.split()[0] if found.split() else None


def run_experiment(repo: Path, name: str, args: list[str], target: str, env: dict[str, str], log: Path) -> int:
    """`dvc exp run --temp --name NAME ARGS TARGET` in `repo` with `env` added, its output into `log`; returns its
    exit status. Interrupted (Ctrl-C), it stops the experiment too."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # Setting up a temporary experiment takes the repository's lock for a moment: another sweep process's trial
    # starting at the same time waits for it instead of failing.
    command = ["dvc", "--wait-for-lock", "exp", "run", "--temp", "--name", name, *args, target]
    with open(log, "w", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        process = subprocess.Popen(command, cwd=repo, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT)
        try:
            return process.wait()
        finally:
            if process.poll() is None:   # interrupted: the experiment goes with the sweep
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def read_score(repo: Path, commit: str, objective: Metric, arch: str) -> float:
    """The objective from the metrics file of the experiment's commit."""
    path = objective.path(arch)
    try:
        value: Any = json.loads(git(repo, "show", f"{commit}:{path}"))
        for key in objective.keys:
            value = value[key]
        return float(value)
    except (UserError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"experiment {commit[:7]}: no {'.'.join(objective.keys)} in {path} ({err})") from None


def validation_losses(repo: Path, commit: str, arch: str) -> dict[int, float]:
    """Epoch -> validation loss from the train stage's history.csv in the experiment's commit (read from DVC's
    cache), or {} when it cannot be read."""
    import csv
    import io

    import dvc.api

    try:
        text = dvc.api.read(HISTORY.format(arch=arch), repo=str(repo), rev=commit)
        return {int(row["epoch"]): float(row["val_loss"]) for row in csv.DictReader(io.StringIO(text))}
    except Exception:  # noqa: BLE001 - a missing or unreadable history only leaves the pruner fewer references
        return {}


def last_lines(log: Path, count: int = 8) -> str:
    """The end of a trial's log: what says why it failed (DVC's and the stage's last words)."""
    try:
        lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return "\n".join(lines[-count:])
