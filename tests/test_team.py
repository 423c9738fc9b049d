"""A team past one machine, for real (tests.services starts each server on 127.0.0.1):

* two clones of the repo share an `mlflow server` on PostgreSQL with proxied artifacts: models trained and
  registered from one are promoted there, and the other sees the same history and enhances with the champion;
* a DVC remote on an SSH host: a toy pipeline pushed from one clone is pulled into a fresh clone, whose `dvc status`
  and `dvc repro` then find nothing to do.

Kept small on purpose: a few optimiser steps per model and a two-stage toy pipeline, not the tiny profile (the
real pipeline's DVC behaviour is tests/test_e2e.py's)."""
from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from hushkit.registry import CHALLENGER, CHAMPION, MANIFEST_TAG, REGISTERED_MODEL
from tests.conftest import pipeline_repo, run_command as run

pytestmark = pytest.mark.e2e

GIT_USER = ["-c", "user.name=team", "-c", "user.email=team@example.org"]
SYSTEM_METRICS = {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"}


def commit(repo: Path, env: dict, message: str) -> None:
    run(["git", "add", "-A"], repo, env)
    run(["git", *GIT_USER, "commit", "-qm", message], repo, env)


def train_a_few_steps(arch: str, folder: Path, seed: int) -> Path:
    """`arch` after a few optimiser steps on seeded noise (the loss the pipeline uses), saved as a checkpoint: a
    model that differs from a fresh one, in seconds."""
    from hushkit.models import build_model, save_checkpoint
    from hushkit.training.losses import si_sdr_loss

    torch.manual_seed(seed)
    model = build_model(arch)
    clean = 0.1 * torch.randn(2, 8000)
    noisy = clean + 0.05 * torch.randn(2, 8000)
    model.prepare(noisy)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(3):
        optimiser.zero_grad()
        si_sdr_loss(model(noisy), clean).backward()
        optimiser.step()
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder / "model.pt", model.eval())


# --- a shared registry: MLflow on PostgreSQL, two clones ---------------------------------------------------------
@pytest.fixture(scope="module")
def registry_clones(tmp_path_factory, tiny_params, postgres_mlflow_server):
    """Two clones whose committed params.yaml names the shared server; the first trained and registered two
    architectures (each in a training run, as the train and export stages do: system metrics, signature, example),
    pointed @challenger at the better one and ran `hushkit promote`."""
    from mlflow import MlflowClient

    from hushkit import tracking
    from hushkit.models.onnx_export import export_onnx
    from hushkit.models import load_checkpoint
    from hushkit.stages.export import register

    params = copy.deepcopy(tiny_params)
    params["mlflow"]["tracking_uri"] = postgres_mlflow_server   # what a team commits once
    root = tmp_path_factory.mktemp("registry")
    first, env = pipeline_repo(root / "first", params)
    commit(first, env, "the team's tracking server")
    second = root / "second"
    run(["git", "clone", "-q", str(first), str(second)], root, env)

    scores = {"crnn": "2.1", "crced": "2.4"}   # the test_pesq tags the export stage would write
    checkpoints, versions = {}, {}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
        patch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
        mlflow = tracking.setup(params["mlflow"])
        for seed, (arch, score) in enumerate(scores.items()):
            folder = first / "data" / "train" / arch
            with tracking.attempt_run(mlflow, folder / "run.json", run_name=f"train-{arch}") as training:
                mlflow.set_tags({"stage": "train", "architecture": arch})
                checkpoints[arch] = train_a_few_steps(arch, folder, seed)
                time.sleep(0.6)   # a few system-metric samples
            onnx_path = export_onnx(load_checkpoint(checkpoints[arch])[0], first / "data" / "export" / arch /
                                    "model.onnx")
            versions[arch] = register(params["mlflow"], training.info.run_id, checkpoints[arch], onnx_path,
                                      {"architecture": arch, "test_pesq": score, MANIFEST_TAG: "team-test-set"})
        client = MlflowClient(tracking_uri=postgres_mlflow_server, registry_uri=postgres_mlflow_server)
        best = max(scores, key=lambda a: float(scores[a]))
        client.set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, versions[best]["version"])   # summary's job
    promoted = run(["hushkit", "promote", "--user", "ann"], first, env)
    return {"first": first, "second": second, "env": env, "url": postgres_mlflow_server, "best": best,
            "checkpoints": checkpoints, "versions": versions, "promoted": promoted.stdout}


def test_runs_and_models_live_on_the_postgres_backed_server(registry_clones, postgres_database, tmp_path):
    import mlflow
    import sqlalchemy
    from mlflow import MlflowClient
    from mlflow.models import Model

    url = registry_clones["url"]
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    experiment = client.get_experiment_by_name("hushkit")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'train'")
    assert sorted(r.data.tags["architecture"] for r in runs) == ["crced", "crnn"]
    for training in runs:
        assert training.info.artifact_uri.startswith("mlflow-artifacts:/")   # proxied: the server stores them
        assert SYSTEM_METRICS <= set(training.data.metrics), sorted(training.data.metrics)
    engine = sqlalchemy.create_engine(postgres_database)
    try:
        with engine.connect() as connection:
            stored = {row[0] for row in connection.execute(sqlalchemy.text("SELECT run_uuid FROM runs"))}
    finally:
        engine.dispose()
    assert {r.info.run_id for r in runs} <= stored   # rows in PostgreSQL, not a file next to the server

    champion = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    assert champion.tags["architecture"] == registry_clones["best"]
    assert "no champion yet" in registry_clones["promoted"], registry_clones["promoted"]
    mlflow.set_tracking_uri(url)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{REGISTERED_MODEL}@{CHAMPION}", dst_path=str(tmp_path)))
    model = Model.load(local / "MLmodel")
    assert model.signature.inputs.input_names() == ["audio"] and model.saved_input_example_info is not None


def test_the_second_clone_sees_the_history_and_enhances_with_the_champion(registry_clones, tmp_path):
    from hushkit.inference import load_enhancer

    second, env, best = registry_clones["second"], registry_clones["env"], registry_clones["best"]
    assert not (second / "data" / "train" / best / "model.pt").exists()   # the model comes from the server
    champion_version = registry_clones["versions"][best]["version"]
    history = run(["hushkit", "history"], second, env).stdout
    starred = [line for line in history.splitlines() if line.startswith("*")]
    assert len(starred) == 1 and f" {champion_version} " in starred[0] and best in starred[0], history
    assert "by ann" in history   # the first clone's promotion
    again = run(["hushkit", "promote", "--user", "bob"], second, env).stdout
    assert f"v{champion_version}" in again and "already" in again, again

    rate = 16000
    noisy = (0.05 * np.random.default_rng(3).standard_normal(rate)).astype(np.float32)
    sf.write(tmp_path / "noisy.wav", noisy, rate, subtype="FLOAT")
    run(["hushkit", "enhance", str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "clean.wav"), "-m",
         f"models:/{REGISTERED_MODEL}@{CHAMPION}"], second, env)
    enhanced, _ = sf.read(tmp_path / "clean.wav", dtype="float32")
    np.testing.assert_allclose(enhanced, load_enhancer(registry_clones["checkpoints"][best])(noisy), atol=1e-5)


# --- a DVC remote over SSH ---------------------------------------------------------------------------------------
TOY_PIPELINE = {
    "stages": {
        "prepare": {"cmd": "python make.py prepare", "deps": ["make.py"], "params": ["seed"],
                    "outs": ["data/prepared"]},
        "train": {"cmd": "python make.py train", "deps": ["make.py", "data/prepared"], "outs": ["data/model.bin"],
                  "metrics": [{"data/metrics.json": {"cache": False}}]},
    },
}
TOY_SCRIPT = '''"""A toy pipeline: prepare writes a folder of seeded arrays, train a file from them."""
import json, pathlib, sys

import numpy as np
import yaml

seed = yaml.safe_load(open("params.yaml"))["seed"]
if sys.argv[1] == "prepare":
    out = pathlib.Path("data/prepared")
    out.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        np.save(out / f"part{i}.npy", np.random.default_rng(seed + i).standard_normal(1000))
else:
    parts = [np.load(p) for p in sorted(pathlib.Path("data/prepared").glob("*.npy"))]
    weights = np.mean(parts, axis=0)
    pathlib.Path("data/model.bin").write_bytes(weights.tobytes())
    pathlib.Path("data/metrics.json").write_text(json.dumps({"mean": float(weights.mean())}))
'''


def dvc_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1", "DO_NOT_TRACK": "1"})
    return env


def outputs(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in sorted((repo / "data").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ssh_remote_clones(tmp_path_factory, ssh_host):
    """A toy DVC repo reproduced and pushed to an SSH remote, and a fresh clone that pulled it."""
    root = tmp_path_factory.mktemp("dvc-team")
    first, second, remote, env = root / "first", root / "second", root / "remote", dvc_env()
    first.mkdir()
    run(["git", "init", "-q"], first, env)
    run(["dvc", "init", "-q"], first, env)
    (first / "dvc.yaml").write_text(yaml.safe_dump(TOY_PIPELINE, sort_keys=False))
    (first / "params.yaml").write_text("seed: 7\n")
    (first / "make.py").write_text(TOY_SCRIPT)
    url = f"ssh://{ssh_host['user']}@{ssh_host['host']}:{ssh_host['port']}{remote}"
    run(["dvc", "remote", "add", "--default", "team", url], first, env)   # committed: the team's remote
    logs = {"repro": run(["dvc", "repro"], first, env).stdout}
    commit(first, env, "toy pipeline, its lock and the team's remote")

    def credentials(repo: Path) -> None:   # per machine, never committed (.dvc/config.local)
        run(["dvc", "remote", "modify", "--local", "team", "keyfile", ssh_host["keyfile"]], repo, env)

    credentials(first)
    logs["push"] = run(["dvc", "push"], first, env).stdout
    run(["git", "clone", "-q", str(first), str(second)], root, env)
    credentials(second)
    logs["pull"] = run(["dvc", "pull"], second, env).stdout
    logs["status"] = run(["dvc", "status"], second, env).stdout
    logs["repro again"] = run(["dvc", "repro"], second, env).stdout
    return {"first": first, "second": second, "remote": remote, "logs": logs}


def test_a_fresh_clone_pulls_from_the_ssh_remote_and_reruns_nothing(ssh_remote_clones):
    first, second, logs = ssh_remote_clones["first"], ssh_remote_clones["second"], ssh_remote_clones["logs"]
    assert "Running stage 'train'" in logs["repro"]
    stored = [p for p in ssh_remote_clones["remote"].rglob("*") if p.is_file()]
    assert len(stored) >= 5, "dvc push left the SSH remote short of the 4 output files and the folder listing"
    assert outputs(second) == outputs(first)   # every output, byte for byte
    assert "Data and pipelines are up to date" in logs["status"], logs["status"]
    assert "Running stage" not in logs["repro again"], logs["repro again"]
    assert "Stage 'train' didn't change" in logs["repro again"], logs["repro again"]
    # the key is each machine's (.dvc/config.local, untracked); the committed config names only the remote
    assert "keyfile" in (second / ".dvc" / "config.local").read_text()
    assert "keyfile" not in (second / ".dvc" / "config").read_text()
