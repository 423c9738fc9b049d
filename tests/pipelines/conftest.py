"""Fixtures for the flow tests: an isolated Prefect home and a toy DVC repo with the pipeline's stage names
(tests/pipelines/toy.py) that runs in seconds."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipelines import toy

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                 "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}


def isolated_env(prefect_home: Path) -> dict[str, str]:
    """This environment minus any Prefect server or MLflow store it points at, with its own PREFECT_HOME (Prefect's
    ephemeral mode keeps its database there), telemetry off, this interpreter's bin/ first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_TRACKING", "PREFECT_")) and k != "HUSHKIT_PARENT_RUN_ID"}
    env.update(TELEMETRY_OFF)
    env["PREFECT_HOME"] = str(prefect_home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # `pipelines` is not an installed package: importable from the repo root; and this checkout's hushkit, not the
    # one the venv may have installed from another checkout
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


def flow_result(done: subprocess.CompletedProcess) -> dict:
    """The flow's result, the JSON `python -m pipelines.retrain` prints last."""
    return json.loads(done.stdout[done.stdout.index("{"):])


def flow_artifacts(prefect_home: Path, flow_run_id: str) -> list[dict]:
    """The artifacts of a flow run, read from the database of Prefect's (ephemeral) server."""
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT key, type, data, flow_run_id FROM artifact").fetchall()
    # The data column holds the artifact's JSON (a markdown artifact's: one string).
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows
            if row["flow_run_id"].replace("-", "") == flow_run_id.replace("-", "")]


@pytest.fixture
def prefect_env(tmp_path) -> dict[str, str]:
    return isolated_env(tmp_path / "prefect-home")


def git(path: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, env={**os.environ, **TELEMETRY_OFF})


def make_toy_repo(path: Path, *, architectures=("a", "b"), fail_first: int = 0, fail_train=(),
                  schedule: dict | None = None) -> Path:
    """A DVC repo whose stages have the pipeline's names and take a second each (tests/pipelines/toy.py), with
    this repo's pipelines/ beside them (a deployment loads the flow from its repo), committed (DVC's experiments
    start from a commit)."""
    path.mkdir(parents=True)
    shutil.copy2(Path(toy.__file__), path / "toy.py")
    shutil.copytree(ROOT / "pipelines", path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "dvc.yaml").write_text(toy.DVC_YAML)
    params = {"download": {"fail_first": fail_first, "attempts": str(path.parent / f"{path.name}-attempts")},
              "train": {"architectures": list(architectures), "fail": list(fail_train)}}
    if schedule is not None:
        params["schedule"] = schedule
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (path / ".gitignore").write_text("/data/\n__pycache__/\n")
    git(path, "init", "-q")
    git(path, "config", "user.name", "hushkit tests")  # DVC commits each experiment: an identity, even in CI
    git(path, "config", "user.email", "tests@example.invalid")
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=path, check=True,
                   env={**os.environ, **TELEMETRY_OFF})
    git(path, "add", "-A")
    git(path, "commit", "-qm", "toy pipeline")
    return path
