"""Shared fixtures: the tiny profile and the pipeline's stage outputs on it, built once per test session."""
from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml

from hushkit.params import deep_merge, load_params

ROOT = Path(__file__).resolve().parents[1]


def copy_working_tree(target: Path) -> Path:
    """A copy of this working tree: tracked and new files, not ignored ones (no data/, .venv, caches)."""
    import shutil
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


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
def crnn_checkpoint(tmp_path_factory) -> Path:
    """A crnn checkpoint with fresh seeded weights and non-trivial input statistics, for the enhancement tests."""
    import torch

    from hushkit.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("crnn")
    model.set_input_stats(torch.full((model.n_bins,), -5.0), torch.full((model.n_bins,), 3.0))
    return save_checkpoint(tmp_path_factory.mktemp("crnn") / "model.pt", model.eval())


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
