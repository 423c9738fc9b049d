"""The retrain flow (pipelines/retrain.py; its DVC experiments, queue, promotion and report in hushkit.experiments,
its dvc commands in hushkit.dvc_runner) and its deployments (pipelines/deploy.py).

The unit tests drive dvc on a toy repo (tests/pipelines/toy.py: the pipeline's stage names, a second each). The e2e
ones run the real flow: on the real pipeline in Prefect's ephemeral mode (tiny profile, tests/test_e2e.py), and
through a real `prefect server` with a deployment, a process work pool and a worker (on the toy repo)."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dvc.api
import httpx
import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from hushkit import dvc_runner, experiments
from hushkit.params import apply_profile
from pipelines import retrain as flow_module
from pipelines.deploy import DEFAULT_SCHEDULE, build_deployments, schedule_settings
from tests.pipelines.conftest import ROOT, flow_artifacts, flow_result, git, isolated_env, make_toy_repo

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def experiment_names(repo: Path) -> list[str]:
    return run([str(BIN / "dvc"), "exp", "list", "--name-only"], repo, dvc_runner.command_env()).stdout.split()


def leftovers(marker: str) -> str:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.strip()


# --- params: a profile and --arch as `dvc exp run -S` overrides -----------------------------------------------------

@pytest.mark.parametrize("profile", ["tiny", "real-small,gpu"])
def test_a_profile_as_overrides_gives_what_hushkit_params_writes(tmp_path, profile):
    """DVC's own parser (what `dvc exp run -S` applies) turns the profile's overrides into the params that
    `hushkit params --profile` writes: the same merge, nulls, lists and nested mappings."""
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    overrides = experiments.profile_overrides(profile, ROOT)
    assert "++train.models.crced.segment_seconds=null" in overrides or profile != "tiny"
    apply_overrides(params, overrides)
    expected = yaml.safe_load(apply_profile(ROOT / "params.yaml", profile)[0])
    assert yaml.safe_load(params.read_text()) == expected
    with pytest.raises(FileNotFoundError, match="nope"):
        experiments.profile_overrides("nope", ROOT)


def test_values_in_dvcs_override_grammar(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train: {architectures: [crced], lr: 0.1}\n")
    odd = {"path": "sqlite:///mlflow.db", "words": 'a, "b"', "digits": "007", "none": None, "flags": [True, 1e-3]}
    apply_overrides(params, experiments.flatten_overrides({"extra": odd, "empty": {}})
                    + experiments.architectures_override(["crnn", "gtcrn"]))
    assert yaml.safe_load(params.read_text()) == {"train": {"architectures": ["crnn", "gtcrn"], "lr": 0.1},
                                                  "extra": odd, "empty": {}}


def test_experiments_need_a_commit_and_say_so(tmp_path):
    git(tmp_path, "init", "-q")
    experiments.Pipeline(tmp_path).check(queue=False)  # in the workspace: dvc repro needs no commit
    for pipeline, queue in [(experiments.Pipeline(tmp_path, ("train.lr=1",)), False),
                            (experiments.Pipeline(tmp_path), True)]:
        with pytest.raises(ValueError, match="no git commit, and DVC experiments start from one"):
            pipeline.check(queue=queue)


# --- dvc: failures and time limits --------------------------------------------------------------------------------

def test_a_failed_stage_is_named_with_the_end_of_its_stderr(tmp_path):
    repo = make_toy_repo(tmp_path / "toy", fail_train=["b"])
    dvc_runner.run_dvc(["repro", "features"], repo, log=dvc_runner.quiet)
    with pytest.raises(dvc_runner.StageFailed) as failure:
        dvc_runner.run_dvc(["repro", "train@b"], repo, log=dvc_runner.quiet)
    message = str(failure.value)
    assert message.startswith("stage train@b failed")
    assert "train: b diverged at epoch 1: loss nan" in message


def test_a_stage_past_its_time_limit_is_stopped_with_its_children(tmp_path):
    repo = make_toy_repo(tmp_path / "toy")
    (repo / "dvc.yaml").write_text("stages:\n  slow:\n    cmd: sleep 300 && touch slow-in-place\n    outs: [done]\n")
    started = time.monotonic()
    with pytest.raises(dvc_runner.StageTimeout, match="slow: still running after 2 s"):
        dvc_runner.run_dvc(["repro", "slow"], repo, timeout=2, log=dvc_runner.quiet, what="slow")
    assert time.monotonic() - started < 30
    assert not leftovers("sleep 300 && touch slow-in-place")  # dvc's process group was stopped as a whole


def test_the_queue_names_a_failed_experiment_and_kills_one_past_its_time_limit(tmp_path):
    """Two experiments in DVC's queue at once: one fails (named with its stage and log), the other runs past its
    time limit and is stopped with `dvc queue kill`, its stage command with it."""
    repo = make_toy_repo(tmp_path / "toy", fail_train=["b"])
    with (repo / "dvc.yaml").open("a") as dvc_yaml:
        dvc_yaml.write("  slow:\n    cmd: sleep 300 && touch slow-queued\n    outs: [data/slow]\n")
    git(repo, "commit", "-qam", "a slow stage")
    lines: list[str] = []
    outcome = experiments.run_queue(repo, {"bad": ["train@b"], "slow": ["slow"]}, jobs=2, timeout=5,
                                    log=lines.append, poll=0.5)
    assert outcome["bad"].startswith("stage train@b failed (queued experiment bad: Failed)")
    assert "train: b diverged at epoch 1: loss nan" in outcome["bad"]
    assert outcome["slow"] == "slow: still running after 5 s: stopped (dvc queue kill)"
    assert "slow: running" in lines
    deadline = time.monotonic() + 30
    while leftovers("sleep 300 && touch slow-queued") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not leftovers("sleep 300 && touch slow-queued")


def test_downloads_retry_with_exponential_backoff():
    task = flow_module.download_stage
    assert task.retries == 3
    assert task.retry_delay_seconds == [10, 20, 40]
    assert flow_module.train_stage.retries == 0  # a failed training is not transient: no retry


# --- promotion ------------------------------------------------------------------------------------------------------

def test_the_promotion_step_reports_promoted_refused_or_error(tmp_path):
    """`hushkit promote`'s exit code is the decision: 0 promoted, 1 refused by the rules, anything else an error; the
    flow's reason goes with it and its output is kept for the report."""
    fake = tmp_path / "hushkit"
    for code, decision in [(0, "promoted"), (1, "refused"), (2, "error")]:
        fake.write_text(f"#!/bin/sh\necho \"$@\"\necho 'decided in' \"$PWD\" >&2\nexit {code}\n")
        fake.chmod(0o755)
        lines: list[str] = []
        outcome = experiments.promote(tmp_path, "retrain flow run x", log=lines.append, hushkit=str(fake))
        assert outcome["decision"] == decision and outcome["exit_code"] == code
        assert outcome["output"] == f"promote --reason retrain flow run x\ndecided in {tmp_path}"
        assert lines == outcome["output"].splitlines()


# --- the flow in Prefect's ephemeral mode ---------------------------------------------------------------------------

def test_the_ephemeral_server_gets_time_to_start_on_a_busy_machine(tmp_path):
    """Prefect's default (20 s) is shorter than a first start takes on a loaded 2-core machine."""
    probe = ("import pipelines.retrain; from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS "
             "as timeout; print(timeout.value())")
    done = run([sys.executable, "-c", probe], ROOT, isolated_env(tmp_path / "prefect-home"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) >= 120


@pytest.fixture(scope="module")
def toy_prefect_env(tmp_path_factory) -> dict[str, str]:
    """One Prefect home for the toy flow runs: its database is set up once (seconds)."""
    return isolated_env(tmp_path_factory.mktemp("prefect-home"))


def test_toy_flow_retries_the_download_trains_through_the_queue_and_reports(tmp_path, toy_prefect_env):
    """The whole flow on the toy repo, in place, ephemeral mode: the first download fails (retried), three
    architectures, the first trained alone and the others two at a time in DVC's queue, restored in the workspace;
    a failure-free run ending with the leaderboard artifact; the repo's params stay as they were."""
    repo = make_toy_repo(tmp_path / "toy", architectures=("a", "bb", "ccc"), fail_first=1)
    params_before = (repo / "params.yaml").read_text()
    report = tmp_path / "report.md"
    done = run([sys.executable, "-m", "pipelines.retrain", "--repo", str(repo), "-j", "2", "--no-promote",
                "--download-backoff-seconds", "0.5", "--report", str(report)], ROOT, toy_prefect_env)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "Retry 1/3 will start" in done.stderr
    result = flow_result(done)
    assert result["in_place"] and result["experiment"] is None and result["best"] == "ccc"
    assert result["stages"]["train@a"] == "trained"
    assert result["stages"]["train@bb"] == result["stages"]["train@ccc"] == "trained in DVC's queue"
    assert result["promotion"] == {"decision": "not requested"}
    assert (repo / "params.yaml").read_text() == params_before
    assert (repo / "data" / "export" / "bb" / "model.onnx").is_file()
    assert "Stage 'train@ccc' is cached - skipping run" in done.stderr  # restored, not trained again
    assert experiment_names(repo) == []  # the queued trainings' experiments are removed
    [artifact] = flow_artifacts(Path(toy_prefect_env["PREFECT_HOME"]), result["flow_run_id"])
    assert artifact["key"] == "leaderboard" and artifact["type"] == "markdown"
    assert "Best by pesq: ccc." in artifact["data"] and "**Decision: not requested**" in artifact["data"]
    assert report.read_text() == artifact["data"]


def test_toy_flow_fails_naming_the_stage_and_still_reports(tmp_path, toy_prefect_env):
    repo = make_toy_repo(tmp_path / "toy", architectures=("a", "b"), fail_train=["b"])
    report = tmp_path / "report.md"
    done = run([sys.executable, "-m", "pipelines.retrain", "--repo", str(repo), "--no-promote", "--report",
                str(report)], ROOT, toy_prefect_env)
    assert done.returncode == 1
    assert "retrain failed: training failed for b (the others finished: train@a)" in done.stderr
    assert "train: b diverged at epoch 1: loss nan" in done.stderr
    assert "Finished in state Failed(" in done.stderr
    assert "## Failed" in report.read_text() and "stage train@b failed" in report.read_text()
    with sqlite3.connect(Path(toy_prefect_env["PREFECT_HOME"]) / "prefect.db") as db:
        [(data,)] = db.execute("SELECT data FROM artifact WHERE data LIKE '%stage train@b failed%'").fetchall()
    assert json.loads(data) == report.read_text()


def test_toy_flow_with_overrides_is_a_dvc_experiment_and_leaves_the_workspace_alone(tmp_path, toy_prefect_env):
    """With `-S` the run is a DVC experiment (`dvc exp run --temp` for every step, DVC parsing the overrides): the
    repo's params and outputs stay as they were, the experiment holds the overridden params and the results, and
    only it is kept."""
    repo = make_toy_repo(tmp_path / "toy", architectures=("a", "b"))
    params_before = (repo / "params.yaml").read_text()
    done = run([sys.executable, "-m", "pipelines.retrain", "--repo", str(repo), "--no-promote", "--name", "try-b",
                "-S", "train.architectures=[b]", "-S", "+train.extra=1e-3"], ROOT, toy_prefect_env)
    assert done.returncode == 0, done.stderr[-5000:]
    result = flow_result(done)
    assert not result["in_place"] and result["experiment"] == "try-b" and result["architectures"] == ["b"]
    assert result["best"] == "b"
    assert (repo / "params.yaml").read_text() == params_before and not (repo / "data").exists()
    assert experiment_names(repo) == ["try-b"]
    params = dvc.api.params_show(repo=str(repo), rev="try-b")
    assert params["train"]["architectures"] == ["b"] and params["train"]["extra"] == 0.001
    assert "Best by pesq: b." in dvc.api.read("data/summary/leaderboard.md", repo=str(repo), rev="try-b")
    [artifact] = flow_artifacts(Path(toy_prefect_env["PREFECT_HOME"]), result["flow_run_id"])
    assert "Best by pesq: b." in artifact["data"] and "experiment `try-b`" in artifact["data"]
    with pytest.raises(ValueError, match="experiment try-b exists"):  # the next run says so before it starts
        experiments.Pipeline(repo, ("train.architectures=[a]",), "try-b").check(queue=False)



# --- deployments ----------------------------------------------------------------------------------------------------

def test_deployments_take_the_cron_and_pools_from_params(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))  # loading a flow needs no server
    schedule = {"cron": "30 4 * * 2", "timezone": "Europe/Berlin", "work_pool_gpu": "gpus", "work_pool_cpu": "cpus"}
    repo = make_toy_repo(tmp_path / "toy", schedule=schedule)
    gpu, cpu = build_deployments(repo)
    assert (gpu.name, gpu.work_pool_name) == ("retrain-gpu", "gpus")
    assert (cpu.name, cpu.work_pool_name) == ("retrain-cpu", "cpus")
    [scheduled] = gpu.schedules
    assert (scheduled.schedule.cron, scheduled.schedule.timezone) == ("30 4 * * 2", "Europe/Berlin")
    assert cpu.schedules == []
    assert gpu.entrypoint == "pipelines/retrain.py:retrain" and gpu.flow_name == "retrain"
    assert gpu.parameters == {"repo": str(repo), "max_concurrent_training": 1}
    assert gpu.job_variables["env"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert gpu.concurrency_limit == 1


def test_schedule_defaults_and_validation(tmp_path):
    assert schedule_settings(tmp_path / "absent.yaml") == DEFAULT_SCHEDULE
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump({"schedule": {"cron": "every monday"}}))
    with pytest.raises(ValueError, match="schedule.cron"):
        schedule_settings(bad)
    bad.write_text(yaml.safe_dump({"schedule": {"crn": "0 3 * * 1"}}))
    with pytest.raises(ValueError, match="unknown key"):
        schedule_settings(bad)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.e2e
def test_a_deployed_retrain_runs_on_a_process_worker(tmp_path):
    """`prefect server` on 127.0.0.1, `python -m pipelines.deploy` (creates the process pools, applies both
    deployments with the params' cron), `prefect deployment run`, a process worker started here that picks the run
    up and sees it through to COMPLETED with its leaderboard artifact. The repo is the toy one (the real pipeline
    runs through the flow in the ephemeral test above): this proves the deployment path, with the flow loaded from
    the repo's pipelines/ by a worker, in a fresh process."""
    schedule = {"cron": "0 0 1 1 *", "timezone": "UTC", "work_pool_gpu": "test-gpu", "work_pool_cpu": "test-cpu"}
    repo = make_toy_repo(tmp_path / "toy", architectures=("a", "bb"), schedule=schedule)
    env = isolated_env(tmp_path / "prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.5)
        env["PREFECT_API_URL"] = api

        deployed = run([sys.executable, "-m", "pipelines.deploy", "--repo", str(repo)], repo, env)
        assert deployed.returncode == 0, deployed.stderr[-5000:]
        assert "created work pool test-gpu (process)" in deployed.stdout
        assert "retrain/retrain-gpu" in run([str(BIN / "prefect"), "deployment", "ls"], repo, env).stdout
        inspected = run([str(BIN / "prefect"), "deployment", "inspect", "retrain/retrain-gpu"], repo, env).stdout
        assert "0 0 1 1 *" in inspected and "test-gpu" in inspected

        triggered = run([str(BIN / "prefect"), "deployment", "run", "retrain/retrain-gpu"], repo, env)
        assert triggered.returncode == 0, triggered.stderr
        flow_run_id = triggered.stdout.split("UUID:")[1].split()[0]
        worker_log = (tmp_path / "worker.log").open("w")
        # --run-once --limit 1: one poll, then wait for the run it picked up, then exit.
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "test-gpu", "--type", "process",
                                   "--run-once", "--limit", "1"], cwd=repo, env=env, stdout=worker_log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline, state = time.monotonic() + 240, None
        while time.monotonic() < deadline:
            state = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=10).json()["state"]
            if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state and state["type"] == "COMPLETED", (state, (tmp_path / "worker.log").read_text()[-5000:])
        artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["leaderboard"]}}},
                               timeout=10).json()
        assert [a["flow_run_id"] for a in artifacts] == [flow_run_id]
        assert "Best by pesq: bb." in artifacts[0]["data"]
        assert "**Decision: " in artifacts[0]["data"]  # promote=True: `hushkit promote` was tried (no registry here)
        assert (repo / "data" / "summary" / "leaderboard.md").is_file()
    finally:
        for proc in (worker, server):
            if proc is not None:
                _stop(proc)
