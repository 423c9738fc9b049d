"""`mlflow models serve` runs the registry's champion offline: a request on loopback gets enhanced audio back."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from hushkit.inference import load_enhancer
from hushkit.models import build_model, save_checkpoint
from tests.services import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def champion(tmp_path, monkeypatch):
    """A small crced registered the way export@<arch> registers it, with the alias `champion`."""
    from mlflow import MlflowClient

    from hushkit.stages.export import register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "model.pt", build_model("crced"))
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"")  # the pyfunc loads the checkpoint; the ONNX artifact only travels with it
    mlflow_params = {"tracking_uri": uri, "experiment": "serve-test", "registered_model": "hushkit-denoiser"}
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("serve-test")
    with mlflow.start_run() as run:
        run_id = run.info.run_id
    registry = register(mlflow_params, run_id, checkpoint, onnx_path, {"architecture": "crced"})
    MlflowClient(uri).set_registered_model_alias("hushkit-denoiser", "champion", registry["version"])
    return uri, checkpoint


@contextlib.contextmanager
def served(model_uri: str, env: dict, cwd: Path, *options: str, timeout: float = 120) -> Iterator[str]:
    """`mlflow models serve -m model_uri <options>` on a free loopback port until it answers /ping; yields its URL
    and stops it (its whole process group: mlflow and the scoring server) afterwards."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", model_uri, *options, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"],
                              env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow models serve did not come up:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def request_enhancement(url: str, audio: np.ndarray) -> np.ndarray:
    body = json.dumps({"dataframe_records": [{"audio": audio.tolist()}]}).encode()
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    return np.asarray(answer["predictions"][0]["audio"], dtype=np.float32)


def test_served_champion_answers_a_loopback_request(champion, tmp_path):
    uri, checkpoint = champion
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    audio = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    with served("models:/hushkit-denoiser@champion", env, tmp_path, "--env-manager", "local") as url:
        enhanced = request_enhancement(url, audio)
    assert enhanced.shape == audio.shape
    np.testing.assert_allclose(enhanced, load_enhancer(checkpoint)(audio), atol=1e-5)


def test_the_logged_model_carries_its_code_requirements_signature_and_example(champion, tmp_path):
    uri, checkpoint = champion
    import mlflow
    from mlflow.models import Model

    from hushkit import serving

    mlflow.set_tracking_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts("models:/hushkit-denoiser@champion", dst_path=str(tmp_path)))
    model = Model.load(local / "MLmodel")
    assert model.signature.inputs.input_names() == ["audio"] and model.signature.outputs.input_names() == ["audio"]
    assert model.saved_input_example_info is not None
    example = json.loads((local / model.saved_input_example_info["serving_input_path"]).read_text())
    assert len(example["dataframe_split"]["data"][0][0]) == serving.EXAMPLE_SAMPLES   # a request's body, as sent
    requirements = (local / "requirements.txt").read_text().split()
    assert [r.split("==")[0] for r in requirements[1:]] == list(serving.SERVING_DISTRIBUTIONS)
    assert requirements[0].startswith("mlflow==") and not any(r.startswith("hushkit") for r in requirements)
    assert (local / "code" / "hushkit" / "serving.py").is_file() and not list(local.rglob("__pycache__"))
    from importlib.metadata import version

    assert f"torch=={version('torch').split('+')[0]}" in requirements   # a local label (+cpu) dropped


@pytest.mark.timeout(1500)   # a first start builds the environment: up to 800 s to come up on a busy machine
def test_served_champion_in_an_environment_of_its_own(champion, tmp_path):
    """MLflow's default environment manager (virtualenv: pyenv provides the logged Python version, pip installs
    requirements.txt; the environment is cached under ~/.mlflow/envs): the model runs from its own requirements and
    code, not from this environment."""
    if shutil.which("pyenv") is None:
        pytest.skip("mlflow's default environment manager (virtualenv) needs pyenv, to provide the model's Python "
                    f"{sys.version.split()[0]}; without it serve with `--env-manager uv` (docs/team.md)")
    uri, checkpoint = champion
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PYTHONPATH", None)   # nothing of this checkout on the served model's path
    audio = (0.1 * np.random.default_rng(1).standard_normal(12000)).astype(np.float32)
    with served("models:/hushkit-denoiser@champion", env, tmp_path, timeout=800) as url:
        enhanced = request_enhancement(url, audio)
        server = listening_command(int(url.rsplit(":", 1)[1]))
    np.testing.assert_allclose(enhanced, load_enhancer(checkpoint)(audio), atol=1e-5)
    # the scoring server ran in an environment MLflow built, not in this interpreter's
    assert "/.mlflow/envs/" in server[0] and not server[0].startswith(sys.prefix), server


def listening_command(port: int) -> list[str]:
    """The command line of the process listening on loopback `port`."""
    import psutil

    for connection in psutil.net_connections("tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            return psutil.Process(connection.pid).cmdline()
    raise AssertionError(f"nothing listens on port {port}")
