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


def dvc_output_hashes(repo: Path) -> dict[str, str]:
    """sha256 of every file of every DVC output (dvc.lock's outs; a folder: each file in it), by path."""
    import hashlib

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    hashes = {}
    for stage in lock.values():
        for out in stage.get("outs", []):
            path = repo / out["path"]
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    hashes[file.relative_to(repo).as_posix()] = hashlib.sha256(file.read_bytes()).hexdigest()
    return hashes


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


def sigkill_when(process, marker: str, timeout: float = 120) -> str:
    """SIGKILL `process` (started with stdout=PIPE, text=True) once it prints a line containing `marker`; asserts it
    died of it and returns what it printed."""
    import signal

    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=timeout)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL, "".join(lines)
    return "".join(lines)


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(scope="module", autouse=True)
def mlflow_uris_restored():
    """Each test module leaves MLflow's process-wide tracking and registry URIs as it found them. A test that runs a
    stage in-process sets both (hushkit.tracking.setup); left behind, they would send a later module's
    `MlflowClient(tracking_uri=...)` registry calls to that test's store."""
    before = _mlflow_uri_globals()[2] if "mlflow" in sys.modules else (None, None)
    yield
    if "mlflow" in sys.modules:
        tracking, registry, _ = _mlflow_uri_globals()
        tracking._tracking_uri, registry._registry_uri = before


def _mlflow_uri_globals():
    """MLflow's modules holding the process-wide URIs, and their values. Private state (MLflow has no public
    "unset"): this fails loudly, not silently, if MLflow moves it."""
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    assert hasattr(tracking, "_tracking_uri") and hasattr(registry, "_registry_uri"), "MLflow moved its URI globals"
    return tracking, registry, (tracking._tracking_uri, registry._registry_uri)


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
def crnn_checkpoint(tmp_path_factory) -> Path:
    """A crnn checkpoint with fresh seeded weights and non-trivial input statistics, for the enhancement tests."""
    import torch

    from hushkit.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("crnn")
    model.set_input_stats(torch.full((model.n_bins,), -5.0), torch.full((model.n_bins,), 3.0))
    return save_checkpoint(tmp_path_factory.mktemp("crnn") / "model.pt", model.eval())


@pytest.fixture(scope="session")
def untrained_tagger_checkpoint(tmp_path_factory) -> Path:
    """A small tagcnn with fresh seeded weights: its scores differ from file to file, which is all the mechanics of
    tagging (rows, segments, thresholds, breakdowns) need."""
    import torch

    from hushkit.models import build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tagger") / "model.pt"
    save_checkpoint(path, build_model("tagcnn", channels=[8, 8], hidden=8).eval())
    return path


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
def rirs_dir(tiny_params, tmp_path_factory) -> Path:
    from hushkit.stages import rirs

    out = tmp_path_factory.mktemp("pipeline") / "rirs"
    rirs.run(tiny_params["rirs"], out=out, download_params=tiny_params["download"])
    return out


@pytest.fixture(scope="session")
def mix_dir(tiny_params, corpus_dir, rirs_dir) -> Path:
    from hushkit.stages import mix

    out = corpus_dir.parent / "mix"
    mix.run(tiny_params["mix"], corpus=corpus_dir, out=out, rirs=rirs_dir)
    return out


@pytest.fixture(scope="session")
def features_dir(tiny_params, mix_dir) -> Path:
    from hushkit.stages import features

    out = mix_dir.parent / "features"
    features.run(tiny_params["features"], mix=mix_dir, corpus=mix_dir.parent / "corpus", out=out,
                 mix_params=tiny_params["mix"])
    return out


# --- MLflow stores: a migrated sqlite template, and a tracking server on loopback ------------------------------
@pytest.fixture(scope="session")
def mlflow_template_store(tmp_path_factory) -> Path:
    """An empty, migrated sqlite store: creating one costs seconds, copying it milliseconds."""
    import os

    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    cwd = os.getcwd()
    os.chdir(path.parent)   # a local store makes ./mlruns for artifacts: not in the repo
    try:
        MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}").search_experiments()
    finally:
        os.chdir(cwd)
    return path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, mlflow_template_store):
    """`mlflow server` on 127.0.0.1 over a sqlite store of its own; yields its URL. Tests that share it use
    registered-model names of their own."""
    import shutil

    from tests import services

    root = tmp_path_factory.mktemp("server")
    shutil.copy(mlflow_template_store, root / "server.db")   # already migrated: the server starts faster
    with services.mlflow_server(f"sqlite:///{root / 'server.db'}", root) as url:
        yield url


# --- a team's shared services: PostgreSQL, an MLflow server on it, an SSH host for a DVC remote ----------------------
@pytest.fixture(scope="session")
def postgres_database():
    """A throw-away PostgreSQL cluster on 127.0.0.1 with an empty database (tests.services.postgres_database);
    yields its SQLAlchemy URL."""
    from tests import services

    with services.postgres_database() as database:
        yield database


@pytest.fixture(scope="session")
def postgres_mlflow_server(tmp_path_factory, postgres_database):
    """`mlflow server` over `postgres_database`, artifacts proxied (stored under the server's folder); yields its
    URL."""
    from tests import services

    with services.mlflow_server(postgres_database, tmp_path_factory.mktemp("postgres-server")) as url:
        yield url


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory):
    """sshd on 127.0.0.1 with a throw-away key (tests.services.ssh_server): host, port, user, keyfile."""
    from tests import services

    with services.ssh_server(tmp_path_factory.mktemp("sshd")) as host:
        yield host
