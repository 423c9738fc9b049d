"""The real pipeline: `dvc repro` on the tiny profile in a temporary copy of the repo, every stage for real."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("download", "mix", "features", "train", "evaluate", "export")

pytestmark = pytest.mark.e2e


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_params) -> tuple[Path, dict]:
    """A copy of the working tree (tracked and new files, not ignored ones) with params.yaml = the tiny profile."""
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"})
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "repro"], repo, env)
    return repo, env


def test_every_stage_produced_its_outputs(repo):
    repo, _ = repo
    data = repo / "data"
    corpus = pd.read_csv(data / "corpus" / "manifest.csv")
    assert {"speech", "noise"} == set(corpus.kind)
    mixtures = pd.read_csv(data / "mix" / "manifest.csv")
    assert set(mixtures.split) == {"train", "val", "test"}
    assert (data / "features" / "train" / "noisy.npy").is_file()
    for stage, report in [("corpus", "manifest.json"), ("mix", "manifest.json"), ("features", "output_arrays.json")]:
        assert json.loads((data / stage / "checks" / report).read_text())["success"] is True
    assert (data / "train" / "model.pt").is_file()
    metrics = json.loads((data / "evaluate" / "metrics.json").read_text())
    for system in ("noisy", "crced", "improvement"):
        assert set(metrics[system]) == {"pesq", "stoi", "estoi", "si_sdr"}
        assert all(np.isfinite(v) for v in metrics[system].values())
    export = json.loads((data / "export" / "export.json").read_text())
    assert export["parity_max_abs_error"] <= 1e-4
    assert export["registry"]["alias"] == "challenger"


def test_registry_and_tracking(repo):
    repo, _ = repo
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    version = client.get_model_version_by_alias("hushkit-denoiser", "challenger")
    assert version.tags["architecture"] == "crced"
    run = client.get_run(version.run_id)
    assert {"train_loss", "val_loss", "test_pesq", "test_si_sdr"} <= set(run.data.metrics)
    assert run.data.params["train.model"] == "crced"
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "audio_examples")]
    assert any(path.endswith("_enhanced.wav") for path in artifacts)


def test_dag_and_nothing_reruns_when_nothing_changed(repo):
    repo, env = repo
    dag = run(["dvc", "dag", "--dot"], repo, env).stdout
    for upstream, downstream in zip(STAGES, STAGES[1:]):
        assert f'"{upstream}" -> "{downstream}"' in dag
    again = run(["dvc", "repro"], repo, env).stdout
    assert "Running stage" not in again
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change" in again


def test_nan_mixture_stops_the_next_stage_naming_the_file(repo):
    repo, env = repo
    mixtures = pd.read_csv(repo / "data" / "mix" / "manifest.csv")
    victim = repo / "data" / "mix" / mixtures.noisy_path.iat[0]
    audio, rate = sf.read(victim, dtype="float32")
    backup = victim.read_bytes()
    sf.write(victim, np.full_like(audio, np.nan), rate, subtype="FLOAT")
    try:
        proc = run(["dvc", "repro", "--single-item", "features"], repo, env, check=False)
    finally:
        victim.write_bytes(backup)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert mixtures.noisy_path.iat[0] in message
    assert "all_finite" in message


def test_changing_a_mix_param_reruns_mix_and_downstream_only(repo):
    repo, env = repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mix"]["seed"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo, env).stdout
    assert "Stage 'download' didn't change" in out
    for stage in STAGES[1:]:
        assert f"Running stage '{stage}'" in out
