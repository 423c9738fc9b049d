"""A team past one machine, for real (tests.services starts each server on 127.0.0.1): the tiny pipeline
(`dvc repro` of the tiny profile, every stage, cut to one architecture and the noisy baseline) runs in one clone
against an `mlflow server` on PostgreSQL with proxied artifacts, and pushes its data and models to a DVC remote on
an SSH host; a second clone of the repo pulls them, finds nothing to rerun, sees the same registry history and
enhances with the champion. The pipeline's other promises (every architecture, reruns, byte-identical outputs) are
tests/test_e2e.py's."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hushkit.registry import CHALLENGER, CHAMPION, REGISTERED_MODEL
from tests.conftest import dvc_output_hashes, pipeline_repo, run_command as run

# the tiny pipeline runs in the module fixture: minutes idle, many more on a busy machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]

GIT_USER = ["-c", "user.name=team", "-c", "user.email=team@example.org"]
SYSTEM_METRICS = {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"}
ARCH = "crced"


def commit(repo: Path, env: dict, message: str) -> None:
    run(["git", "add", "-A"], repo, env)
    run(["git", *GIT_USER, "commit", "-qm", message], repo, env)


@pytest.fixture(scope="module")
def team(tmp_path_factory, tiny_params, postgres_mlflow_server, ssh_host):
    """The first clone commits the team's tracking server (params.yaml) and DVC remote (.dvc/config), runs the tiny
    pipeline, pushes, commits its dvc.lock and promotes; the second clone is a `git clone` of that commit that pulls.
    Each clone's SSH key is its own setting (.dvc/config.local), never committed."""
    params = copy.deepcopy(tiny_params)
    params["mlflow"]["tracking_uri"] = postgres_mlflow_server
    params["train"]["architectures"] = [ARCH]
    params["evaluate"]["baselines"] = ["noisy"]
    root = tmp_path_factory.mktemp("team")
    first, env = pipeline_repo(root / "first", params)
    env = {**env, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.2"}   # a few samples in a seconds-long training
    env.pop("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", None)
    remote = root / "remote"
    url = f"ssh://{ssh_host['user']}@{ssh_host['host']}:{ssh_host['port']}{remote}"
    run(["dvc", "remote", "add", "--default", "team", url], first, env)
    commit(first, env, "the team's tracking server and DVC remote")

    def credentials(repo: Path) -> None:
        run(["dvc", "remote", "modify", "--local", "team", "keyfile", ssh_host["keyfile"]], repo, env)

    credentials(first)
    logs = {"repro": run(["dvc", "repro"], first, env, timeout=1800).stdout}
    logs["push"] = run(["dvc", "push"], first, env).stdout
    commit(first, env, "tiny pipeline results")
    logs["promote"] = run(["hushkit", "promote", "--user", "ann"], first, env).stdout
    second = root / "second"
    run(["git", "clone", "-q", str(first), str(second)], root, env)
    credentials(second)
    logs["pull"] = run(["dvc", "pull"], second, env).stdout
    logs["status"] = run(["dvc", "status", "--json"], second, env).stdout
    logs["repro again"] = run(["dvc", "repro"], second, env).stdout
    return {"first": first, "second": second, "remote": remote, "env": env, "url": postgres_mlflow_server,
            "logs": logs}


def test_runs_and_models_live_on_the_postgres_backed_server(team, postgres_database, tmp_path):
    import mlflow
    import sqlalchemy
    from mlflow import MlflowClient
    from mlflow.models import Model

    url, logs = team["url"], team["logs"]
    assert f"Running stage 'train@{ARCH}'" in logs["repro"] and "Running stage 'summary'" in logs["repro"]
    assert not (team["first"] / "mlflow.db").exists()   # the committed server, not the one-machine default
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    experiment = client.get_experiment_by_name("hushkit")
    [training] = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'train'")
    assert training.data.tags["architecture"] == ARCH
    assert training.info.artifact_uri.startswith("mlflow-artifacts:/")   # proxied: the server stores them
    assert SYSTEM_METRICS <= set(training.data.metrics), sorted(training.data.metrics)
    assert {"test_pesq", "test_rtf"} <= set(training.data.metrics)   # evaluate logged into it through the server
    engine = sqlalchemy.create_engine(postgres_database)
    try:
        with engine.connect() as connection:
            stored = {row[0] for row in connection.execute(sqlalchemy.text("SELECT run_uuid FROM runs"))}
    finally:
        engine.dispose()
    assert training.info.run_id in stored   # a row in PostgreSQL, not a file next to the server

    champion = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    assert champion.run_id == training.info.run_id
    assert client.get_model_version_by_alias(REGISTERED_MODEL, CHALLENGER).version == champion.version
    assert "no champion yet" in logs["promote"], logs["promote"]
    mlflow.set_tracking_uri(url)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{REGISTERED_MODEL}@{CHAMPION}", dst_path=str(tmp_path)))
    model = Model.load(local / "MLmodel")
    assert model.signature.inputs.input_names() == ["audio"] and model.saved_input_example_info is not None


def test_a_fresh_clone_pulls_from_the_ssh_remote_and_reruns_nothing(team):
    first, second, logs = team["first"], team["second"], team["logs"]
    assert list(team["remote"].rglob("*")), "dvc push left the SSH remote empty"
    pushed = dvc_output_hashes(first)
    assert f"data/train/{ARCH}/model.pt" in pushed and "data/summary/leaderboard.md" in pushed
    assert dvc_output_hashes(second) == pushed   # every output, byte for byte
    assert set(json.loads(logs["status"])) <= {"scan"}, logs["status"]   # scan lists its folders on every run
    assert [line for line in logs["repro again"].splitlines() if line.startswith("Running stage")] == [
        "Running stage 'scan':"], logs["repro again"]
    assert f"Stage 'train@{ARCH}' didn't change" in logs["repro again"]
    # the key is each machine's (.dvc/config.local, untracked); the committed config names only the remote
    assert "keyfile" in (second / ".dvc" / "config.local").read_text()
    assert "keyfile" not in (second / ".dvc" / "config").read_text()


def test_the_second_clone_sees_the_history_and_enhances_with_the_champion(team, tmp_path):
    from mlflow import MlflowClient

    from hushkit.inference import load_enhancer

    second, env = team["second"], team["env"]
    client = MlflowClient(tracking_uri=team["url"], registry_uri=team["url"])
    champion = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version
    history = run(["hushkit", "history"], second, env).stdout
    starred = [line for line in history.splitlines() if line.startswith("*")]
    assert len(starred) == 1 and f" {champion} " in starred[0] and ARCH in starred[0], history
    assert "by ann" in history   # the first clone's promotion
    again = run(["hushkit", "promote", "--user", "bob"], second, env).stdout
    assert f"v{champion}" in again and "already" in again, again

    rate = 16000
    noisy = (0.05 * np.random.default_rng(3).standard_normal(rate)).astype(np.float32)
    sf.write(tmp_path / "noisy.wav", noisy, rate, subtype="FLOAT")
    run(["hushkit", "enhance", str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "clean.wav"), "-m",
         f"models:/{REGISTERED_MODEL}@{CHAMPION}"], second, env)
    enhanced, _ = sf.read(tmp_path / "clean.wav", dtype="float32")
    expected = load_enhancer(team["first"] / "data" / "train" / ARCH / "model.pt")(noisy)
    np.testing.assert_allclose(enhanced, expected, atol=1e-5)
