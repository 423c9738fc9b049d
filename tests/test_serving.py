"""`mlflow models serve` runs the registry's champion offline: a request on loopback gets enhanced audio back."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from hushkit.inference import load_enhancer
from hushkit.models import build_model, save_checkpoint

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_served_champion_answers_a_loopback_request(champion, tmp_path):
    uri, checkpoint = champion
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", "models:/hushkit-denoiser@champion",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode(errors="replace") if server.poll() is not None else ""
                    pytest.fail(f"mlflow models serve did not come up:\n{output[-3000:]}")
                time.sleep(0.5)
        rng = np.random.default_rng(0)
        audio = (0.1 * rng.standard_normal(8000)).astype(np.float32)
        body = json.dumps({"dataframe_records": [{"audio": audio.tolist()}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
        enhanced = np.asarray(answer["predictions"][0]["audio"], dtype=np.float32)
        expected = load_enhancer(checkpoint)(audio)
        assert enhanced.shape == audio.shape
        np.testing.assert_allclose(enhanced, expected, atol=1e-5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
