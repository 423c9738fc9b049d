"""DVC experiments for the retrain flow (pipelines/retrain.py): a retrain is a `Pipeline` run in steps (the download,
the data stages, each training, the rest). With no params overrides a step is `dvc repro <stages>` in the repo's
workspace, what a user would type; with overrides (a profile, `-S`, an architecture list) it is `dvc exp run --temp
-S ... <stages>`, DVC parsing and applying the overrides, so the workspace stays as it was. A step restores what the
earlier ones built from DVC's run cache (the copies share the repo's cache); the last step, the whole pipeline, is
the experiment kept under the run's name, and the steps' own experiments are removed. Trainings at once go through
DVC's queue (`dvc exp run --queue`, `dvc queue start -j N`). Experiments start from a commit: uncommitted changes
to tracked files go with them, untracked files do not.

Nothing here imports Prefect: the flow passes its run logger in as `log`.
"""
from __future__ import annotations

import datetime
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hushkit.dvc_runner import (DVC_NOISE, FAILED_STAGE, Log, StageFailed, command_env, last_lines, quiet, run_dvc,
                                tool)
from hushkit.params import deep_merge, profile_path

PROMOTE_EXIT_CODES = {0: "promoted", 1: "refused"}  # hushkit promote; anything else is "error" (2: could not act)


# --- params overrides, as `dvc exp run -S` takes them --------------------------------------------------------------

def hydra_value(value: Any) -> str:
    """`value` in the override grammar `dvc exp run -S` parses (Hydra's), read back as the same type and value:
    null, true, numbers, strings (bare where Hydra reads them as strings, else quoted), [lists], {mappings}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {hydra_value(item)}" for key, item in value.items()) + "}"
    text = str(value)
    if re.match(r"^[A-Za-z_][A-Za-z0-9_\-./]*$", text) and text.lower() not in ("true", "false", "null", "nan",
                                                                                "inf"):
        return text
    # Quoted: a quote is escaped, and so is every backslash before a quote or the closing one (Hydra's rule).
    quoted = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted) + "'"


def flatten_overrides(overlay: dict[str, Any], prefix: str = "") -> list[str]:
    """An overlay of params.yaml as `++key=value` overrides, one per leaf: mappings merge, everything else (lists
    included) replaces, as hushkit.params.deep_merge does; `++` adds a key params.yaml lacks."""
    items: list[str] = []
    for key, value in overlay.items():
        if isinstance(value, dict) and value:
            items += flatten_overrides(value, f"{prefix}{key}.")
        else:
            items.append(f"++{prefix}{key}={hydra_value(value)}")
    return items


def profile_overrides(profile: str | None, repo: Path) -> list[str]:
    """A profile (a name in `repo`/profiles/ or a path; several separated by commas are merged in that order, as
    `hushkit params --profile` does) as `-S` overrides."""
    overlay: dict[str, Any] = {}
    for name in filter(None, (part.strip() for part in (profile or "").split(","))):
        loaded = yaml.safe_load(profile_path(name, repo / "profiles").read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"profile {name}: expected a mapping of params.yaml's sections")
        overlay = deep_merge(overlay, loaded)
    return flatten_overrides(overlay)


def architectures_override(architectures: list[str] | None) -> list[str]:
    return [f"train.architectures={hydra_value(list(architectures))}"] if architectures else []


def experiment_name() -> str:
    return "retrain-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")


# --- a retrain's steps ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pipeline:
    """Where and how a retrain runs (see the module docstring): `overrides` empty, in `repo`'s workspace; otherwise
    as temporary experiments, the whole pipeline under `name`, a step under `<name>-<step>`."""
    repo: Path
    overrides: tuple[str, ...] = ()
    name: str = "retrain"

    @property
    def in_place(self) -> bool:
        return not self.overrides

    def step_name(self, label: str) -> str:
        return f"{self.name}-{label.replace('@', '-')}"

    def _set_params(self) -> list[str]:
        return [arg for item in self.overrides for arg in ("-S", item)]

    def check(self, queue: bool) -> None:
        """Before anything runs: experiments (and the queue) start from a commit, and the run's name is free."""
        if (queue or not self.in_place) and subprocess.run(
                ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=self.repo, capture_output=True).returncode:
            raise ValueError(f"{self.repo}: no git commit, and DVC experiments start from one "
                             "(git add -A && git commit)")
        if not self.in_place and self.name in self.experiments():
            raise ValueError(f"{self.repo}: experiment {self.name} exists (choose another name, or "
                             f"dvc exp remove {self.name})")

    def experiments(self) -> set[str]:
        """The names of the experiments on the repo's commit."""
        return set(run_dvc(["exp", "list", "--name-only"], self.repo, log=quiet, what="dvc exp list").split())

    def stages(self) -> list[str]:
        """Every stage of the workspace's pipeline as DVC expands it (foreach items included), in dvc.yaml's order."""
        listed = run_dvc(["stage", "list", "--name-only"], self.repo, log=quiet, what="dvc stage list")
        return [line.strip() for line in listed.splitlines() if line.strip()]

    def run(self, targets: list[str], label: str, *, timeout: float | None = None, log: Log = print) -> str:
        """The stages `targets` (all of them when empty): `dvc repro`, or a temporary experiment."""
        if self.in_place:
            return run_dvc(["repro", *targets], self.repo, timeout=timeout, log=log, what=label)
        name = self.step_name(label) if targets else self.name
        return run_dvc(["exp", "run", "--temp", "--name", name, *self._set_params(), *targets], self.repo,
                       timeout=timeout, log=log, what=label)

    def architectures(self, stages: list[str], step: str) -> list[str]:
        """The architectures trained: the workspace's, or those in the params of the experiment of `step`."""
        if self.in_place:
            return [name.split("@", 1)[1] for name in stages if name.startswith("train@")]
        import dvc.api

        return list(dvc.api.params_show(repo=str(self.repo), rev=self.step_name(step))["train"]["architectures"])

    def train_in_queue(self, archs: list[str], jobs: int, timeout: float, log: Log = print) -> dict[str, str | None]:
        """`train@<arch>` of each of `archs` as a queued experiment, `jobs` at a time; arch → None when it trained,
        else why not."""
        entries = {arch: self.step_name(f"train@{arch}") for arch in archs}
        outcome = run_queue(self.repo, {name: [*self._set_params(), f"train@{arch}"] for arch, name in entries.items()},
                            jobs, timeout, log)
        return {arch: outcome[name] for arch, name in entries.items()}

    def remove_steps(self, labels: list[str], log: Log = print) -> None:
        """Remove the experiments of these steps (partial pipelines; DVC's run cache keeps what they built)."""
        try:
            existing = self.experiments()
            names = [self.step_name(label) for label in labels if self.step_name(label) in existing]
            if names:
                run_dvc(["exp", "remove", *names], self.repo, log=quiet, what="dvc exp remove")
        except StageFailed as error:
            log(f"the step experiments stay: {error}")

    def read(self, path: str | Path) -> str | None:
        """A file of the run's result, from the workspace or from the experiment; None where it has none."""
        if self.in_place:
            file = self.repo / path
            return file.read_text() if file.is_file() else None
        import dvc.api

        try:
            return dvc.api.read(str(path), repo=str(self.repo), rev=self.name)
        except Exception:  # no experiment of that name (the run failed) or no such file in it: dvc's many kinds
            return None


# --- DVC's experiment queue ----------------------------------------------------------------------------------------

def queue_states(repo: Path, env: dict[str, str]) -> dict[str, str]:
    """Experiment name → state (Queued, Running, Success, Failed) of the tasks in DVC's queue."""
    listed = run_dvc(["queue", "status"], repo, env, log=quiet, what="dvc queue status")
    rows = [line.split() for line in listed.splitlines()[1:] if not line.startswith("Worker status")]
    return {parts[1]: parts[-1] for parts in rows if len(parts) >= 4}


def run_queue(repo: Path, entries: dict[str, list[str]], jobs: int, timeout: float, log: Log = print,
              poll: float = 2.0, lost_after: float = 600.0) -> dict[str, str | None]:
    """Queue an experiment per entry (name → `dvc exp run` arguments), run them `jobs` at a time (`dvc queue start
    -j`) and wait; one still running `timeout` seconds after it started is stopped with `dvc queue kill`, which
    interrupts its worker's whole process group (the stage command and its children). Returns name → None when it
    succeeded, else why not. Interrupted, it stops its experiments that run and drops those still queued."""
    env = command_env()
    for name, args in entries.items():
        run_dvc(["exp", "run", "--queue", "--name", name, *args], repo, env, log=quiet, what=f"queueing {name}")
    start = ["queue", "start", "--jobs", str(jobs)]
    run_dvc(start, repo, env, log=log, what="dvc queue start")
    began: dict[str, float] = {}
    unlisted: dict[str, float] = {}  # `dvc queue status` skips an experiment while its worker saves it
    outcome: dict[str, str | None] = {}
    try:
        while len(outcome) < len(entries):
            time.sleep(poll)
            states, now = queue_states(repo, env), time.monotonic()
            for name in [name for name in entries if name not in outcome]:
                state = states.get(name)
                if state == "Running" and name not in began:
                    began[name] = now
                    log(f"{name}: running")
                if state is None and now - unlisted.setdefault(name, now) < lost_after:
                    continue
                unlisted.pop(name, None)
                if state == "Success":
                    outcome[name] = None
                    log(f"{name}: done")
                elif state == "Running" and now - began[name] > timeout:
                    _drop(repo, env, name, ["queue", "kill"])
                    outcome[name] = f"{name}: still running after {timeout:.0f} s: stopped (dvc queue kill)"
                    log(outcome[name])
                    run_dvc(start, repo, env, log=quiet, what="dvc queue start")  # the kill ends its worker too
                elif state not in ("Queued", "Running"):
                    outcome[name] = _queue_failure(repo, env, name, state)
    except BaseException:
        for name in [name for name in entries if name not in outcome]:
            _drop(repo, env, name, ["queue", "kill"] if name in began else ["queue", "remove"])
        raise
    return outcome


def _drop(repo: Path, env: dict[str, str], name: str, command: list[str]) -> None:
    try:
        run_dvc([*command, name], repo, env, log=quiet, what=f"dvc {' '.join(command)} {name}")
    except StageFailed:  # it finished meanwhile
        pass


def _queue_failure(repo: Path, env: dict[str, str], name: str, state: str | None) -> str:
    """Why a queued experiment failed: its failed stage and the end of its log (`dvc queue logs`)."""
    try:
        logs = run_dvc(["queue", "logs", name], repo, env, log=quiet, what=f"dvc queue logs {name}").splitlines()
    except StageFailed as error:
        logs = str(error).splitlines()
    stages = [found for line in logs for found in FAILED_STAGE.findall(line)]
    where = f"stage {stages[-1]}" if stages else name
    return (f"{where} failed (queued experiment {name}: {state or 'gone from the queue'}); last lines of its log:\n"
            f"{last_lines([line for line in logs if line.strip() and not DVC_NOISE.match(line)])}")


# --- the registry ------------------------------------------------------------------------------------------------

def promote(repo: str | Path, reason: str, log: Log = print, hushkit: str | None = None, tagger: bool = False
            ) -> dict[str, Any]:
    """`hushkit promote` in `repo` (`tagger`: of the registered tagger): its decision (promoted, refused, error;
    exit 0, 1, anything else) and output."""
    try:
        command = hushkit or tool("hushkit")
    except FileNotFoundError:
        return {"decision": "not available", "reason": "no `hushkit` command"}
    done = subprocess.run([command, "promote", "--reason", reason, *(["--tagger"] if tagger else [])], cwd=repo, env=command_env(), capture_output=True,
                          text=True, timeout=3600)
    output = last_lines((done.stdout + done.stderr).strip().splitlines())
    for line in output.splitlines():
        log(line)
    decision = PROMOTE_EXIT_CODES.get(done.returncode, "error")
    return {"decision": decision, "exit_code": done.returncode, "output": output}


# --- the report ----------------------------------------------------------------------------------------------------

def report_markdown(result: dict[str, Any], leaderboard: str | None) -> str:
    """A retrain's report from the flow's result: what ran where, the leaderboard and the promotion decision."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = (f"`{result['repo']}` (in place)" if result["in_place"] else f"experiment `{result['experiment']}` of "
             f"`{result['repo']}` (`dvc exp apply {result['experiment']}`)")
    lines = [f"# hushkit retrain, {when}", "", "| | |", "|---|---|", f"| workspace | {where} |",
             f"| profile | {result['profile'] or 'none (params.yaml)'} |",
             f"| overrides | {', '.join(f'`{o}`' for o in result['overrides']) or 'none'} |",
             f"| architectures | {', '.join(result.get('architectures', [])) or '?'} |",
             f"| training | {result['max_concurrent_training']} at a time |", ""]
    if "error" in result:
        lines += ["## Failed", "", "```", result["error"][-6000:], "```", ""]
    lines += ["## Leaderboard", "", leaderboard.strip() if leaderboard else "(no leaderboard: the pipeline did not "
              "finish)", ""]
    for heading, key in (("Promotion", "promotion"), ("Promotion of the tagger", "tagger_promotion")):
        promotion = result.get(key)
        if promotion is None:
            continue
        lines += [f"## {heading}", "", f"**Decision: {promotion['decision']}**", ""]
        lines += [promotion["reason"], ""] if promotion.get("reason") else []
        lines += ["```", promotion["output"], "```", ""] if promotion.get("output") else []
    return "\n".join(lines)
