"""Shared fixtures: the tiny profile and the pipeline's stage outputs on it, built once per test session."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hushkit.params import deep_merge, load_params

ROOT = Path(__file__).resolve().parents[1]


def copy_working_tree(target: Path) -> Path:
    """A copy of this working tree: tracked and new files, not ignored ones (no data/, .venv, caches)."""
    import shutil

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def run_command(cmd: list[str], cwd: Path, env: dict, check: bool = True,
                timeout: float = 900) -> subprocess.CompletedProcess:
    """`cmd` in `cwd`; with `check`, a failure raises naming the command with the end of its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def pipeline_repo(target: Path, params: dict) -> tuple[Path, dict]:
    """A git repository at `target` holding a copy of this working tree with `params` as its params.yaml, and the
    environment to run dvc there: no MLflow store from outside, telemetry off, this interpreter's bin/ first."""
    repo = copy_working_tree(target)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"})
    run_command(["git", "init", "-q"], repo, env)
    return repo, env


@contextlib.contextmanager
def serve(folder: Path):
    """A static HTTP server on 127.0.0.1 for `folder`; yields its base URL. Tests reach no other address."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def file_server(tmp_path, monkeypatch):
    """`serve` for a served/ folder (no proxy in the way): yields the folder and its base URL."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    with serve(served) as base:
        yield served, base


@pytest.fixture
def one_thread():
    """Small CPU workloads (tiny models, frame-by-frame streaming) run fastest on one torch thread, and on a shared
    2-core machine far more predictably; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    overlay = yaml.safe_load((ROOT / "profiles" / "tiny.yaml").read_text())
    return deep_merge(load_params(ROOT / "params.yaml"), overlay)


@pytest.fixture(scope="session")
def corpus_dir(tiny_params, tmp_path_factory) -> Path:
    from hushkit.stages import download

    out = tmp_path_factory.mktemp("pipeline") / "corpus"
    download.run(tiny_params["download"], out=out)
    return out


@pytest.fixture(scope="session")
def mix_dir(tiny_params, corpus_dir) -> Path:
    from hushkit.stages import mix

    out = corpus_dir.parent / "mix"
    mix.run(tiny_params["mix"], corpus=corpus_dir, out=out)
    return out


@pytest.fixture(scope="session")
def features_dir(tiny_params, mix_dir) -> Path:
    from hushkit.stages import features

    out = mix_dir.parent / "features"
    features.run(tiny_params["features"], mix=mix_dir, out=out, mix_params=tiny_params["mix"])
    return out
