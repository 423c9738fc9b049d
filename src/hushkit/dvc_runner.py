"""Running `dvc` for the retrain flow (hushkit.experiments, pipelines/retrain.py): each call streamed line by line to
a log, a failure named after its stage with the end of its output, a call past its time limit stopped together with
every process it started (dvc and the stage command run in a process group of their own).

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

Log = Callable[[str], None]
TAIL_LINES = 30  # lines of a failed command's output in its error
FAILED_STAGE = re.compile(r"failed to reproduce '([^']+)'")
# dvc's hints after every repro and experiment, and its notes on outputs a temporary copy has not checked out yet:
# noise in a flow's log.
DVC_NOISE = re.compile(r"^\s*(To track the changes with git|git add |To enable auto staging|dvc config core.autostage|"
                       r"Use `dvc push`|To apply the results of an experiment|dvc exp apply <exp>|"
                       r"WARNING: No file hash info found)")


class StageFailed(RuntimeError):
    """A DVC stage (or the dvc command running it) failed; the message names it and ends with its output."""


class StageTimeout(StageFailed):
    """A stage ran past its time limit and was stopped."""


def quiet(line: str) -> None:
    """A `log` that drops every line."""


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
    """This process's environment for dvc, its queue workers and the stage commands: telemetry off, this
    interpreter's bin/ first on PATH (stage commands say `python`), plus `extra`."""
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


def last_lines(lines: list[str]) -> str:
    return "\n".join(lines[-TAIL_LINES:])


def run_dvc(args: list[str], cwd: str | Path, env: dict[str, str] | None = None, *, timeout: float | None = None,
            log: Log = print, what: str | None = None) -> str:
    """`dvc <args>` in `cwd`, its output streamed line by line to `log`; returns its stdout.

    Raises StageFailed naming the failed stage (DVC's `failed to reproduce '<stage>'`, else `what`) with the last
    lines of stderr; past `timeout` seconds stops dvc and its stage command (their own process group) and raises
    StageTimeout."""
    env = command_env() if env is None else env
    what = what or f"dvc {' '.join(args)}"
    proc = subprocess.Popen([tool("dvc"), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", bufsize=1, start_new_session=True)
    stdout: list[str] = []
    stderr: deque[str] = deque(maxlen=TAIL_LINES)
    failed_stage: list[str] = []

    def pump(stream, keep) -> None:
        for line in stream:
            line = line.rstrip("\n")
            keep.append(line)
            failed_stage.extend(FAILED_STAGE.findall(line))
            if line.strip() and not DVC_NOISE.match(line):
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
    tail = "\n".join(stderr) or last_lines(stdout)
    if code is None:
        raise StageTimeout(f"{what}: still running after {timeout:.0f} s: stopped (dvc and the stage command); "
                           f"last output:\n{tail}")
    if code != 0:
        stage = f"stage {failed_stage[-1]}" if failed_stage else what
        raise StageFailed(f"{stage} failed (`dvc {' '.join(args)}` in {cwd} exited with {code}); "
                          f"last lines of stderr:\n{tail}")
    return "\n".join(stdout)
