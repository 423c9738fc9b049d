"""Running `dvc` for the retrain flow: each call streamed line by line to a log, a failure named after its stage
with the end of its stderr, a stage past its time limit stopped together with the command it started.

Nothing here imports Prefect: the flow passes its run logger in as `log`.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from hushkit import TELEMETRY_OFF

TAIL_LINES = 30  # lines of a failed stage's stderr in the error
# dvc's hints after every repro, noise in a flow's log.
DVC_HINTS = re.compile(r"^\s*(To track the changes with git|git add |To enable auto staging|dvc config core.autostage|"
                       r"Use `dvc push`)")


class StageFailed(RuntimeError):
    """A DVC stage (or the dvc command running it) failed; the message names it and ends with its stderr."""


class StageTimeout(StageFailed):
    """A stage ran past its time limit and was stopped."""


def tool(name: str) -> str:
    """The executable `name` of this interpreter's environment (the venv's dvc/hushkit), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} is neither beside {sys.executable} nor on PATH")
    return found


def command_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for dvc and the stage commands: telemetry off, this interpreter's bin/ first on
    PATH (stage commands say `python`), plus `extra`."""
    env = {**os.environ, **TELEMETRY_OFF}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the whole process group (dvc and the stage command it started), SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_dvc(args: list[str], cwd: str | Path, env: dict[str, str] | None = None, *, timeout: float | None = None,
            log: Callable[[str], None] = print, what: str | None = None) -> str:
    """`dvc <args>` in `cwd`, its output streamed line by line to `log`; returns its stdout.

    Raises StageFailed naming the failed stage (DVC's `failed to reproduce '<stage>'`, else `what`) with the last
    lines of stderr; past `timeout` seconds stops dvc and its stage command (their own process group) and raises
    StageTimeout."""
    env = command_env() if env is None else env
    what = what or " ".join(args)
    proc = subprocess.Popen([tool("dvc"), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", bufsize=1, start_new_session=True)
    stdout: list[str] = []
    stderr: deque[str] = deque(maxlen=TAIL_LINES)
    failed_stage: list[str] = []

    def pump(stream, keep) -> None:
        for line in stream:
            line = line.rstrip("\n")
            keep.append(line)
            match = re.search(r"failed to reproduce '([^']+)'", line)
            if match:
                failed_stage.append(match.group(1))
            if line.strip() and not DVC_HINTS.match(line):
                log(line)

    pumps = [threading.Thread(target=pump, args=(proc.stdout, stdout), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, stderr), daemon=True)]
    for thread in pumps:
        thread.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        code = None
    except BaseException:  # interrupted (Ctrl-C, flow cancelled): take the stage down with us
        _stop(proc)
        raise
    for thread in pumps:
        thread.join(timeout=10)
    tail = "\n".join(stderr) or "\n".join(stdout[-TAIL_LINES:])
    if code is None:
        raise StageTimeout(f"{what}: still running after {timeout:.0f} s: stopped (dvc and the stage command); "
                           f"last output:\n{tail}")
    if code != 0:
        stage = f"stage {failed_stage[-1]}" if failed_stage else what
        raise StageFailed(f"{stage} failed (`dvc {' '.join(args)}` in {cwd} exited with {code}); "
                          f"last lines of stderr:\n{tail}")
    return "\n".join(stdout)


def stage_list(cwd: str | Path, env: dict[str, str]) -> list[str]:
    """Every stage of the pipeline as DVC expands it (foreach items included), in dvc.yaml's order."""
    return [line.strip() for line in run_dvc(["stage", "list", "--name-only"], cwd, env, log=lambda line: None,
                                             what="dvc stage list").splitlines() if line.strip()]


def dvc_cache_dir(repo: Path, env: dict[str, str]) -> Path:
    """The DVC cache `repo` uses (work copies and lanes share it)."""
    return Path(run_dvc(["cache", "dir"], repo, env, log=lambda line: None, what="dvc cache dir").strip())
