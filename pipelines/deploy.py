"""Deployments of the `retrain` flow (pipelines/retrain.py) on a Prefect server, for process workers:

* `retrain-gpu`: on the cron schedule of params.yaml's `schedule` section, in work pool `schedule.work_pool_gpu`
  (default `hushkit-gpu`): the hosts with a GPU (training picks CUDA by itself, `device: auto`, in mixed
  precision), trains `schedule.gpu_concurrent_training` architectures at once (default 1);
* `retrain-cpu`: no schedule (run it on demand), in work pool `schedule.work_pool_cpu` (default `hushkit-cpu`):
  the same params on CPU hosts.

Both load the flow from this checkout (`flow.from_source(<repo>, "pipelines/retrain.py:retrain")`: a process
worker on the same host runs it in place, no image) and retrain `--repo` (default: the checkout); at most one run of
each at a time (`concurrency_limit=1`: DVC locks the workspace anyway).

On a GPU host, from the repo root (after `make setup`):

    .venv/bin/prefect server start --host 127.0.0.1 --port 4200           # or point at a shared server
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    .venv/bin/prefect work-pool create hushkit-gpu --type process          # python -m pipelines.deploy creates it too
    .venv/bin/python -m pipelines.deploy                                    # applies retrain-gpu and retrain-cpu
    .venv/bin/prefect worker start --pool hushkit-gpu                       # runs the scheduled retrains here
    .venv/bin/prefect deployment run retrain/retrain-gpu                    # one now
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from hushkit import TELEMETRY_OFF
from hushkit.config import RetrainSchedule

FLOW_NAME = "retrain"
ENTRYPOINT = "pipelines/retrain.py:retrain"
DEFAULT_SCHEDULE: dict[str, Any] = dataclasses.asdict(RetrainSchedule())  # the schema's defaults


def schedule_settings(params_file: str | os.PathLike) -> dict[str, Any]:
    """params.yaml's `schedule` section over the defaults (the section is optional)."""
    path = Path(params_file)
    params = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    try:
        settings = dataclasses.asdict(RetrainSchedule.parse(params.get("schedule"), "schedule"))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    from prefect.schedules import Cron

    try:
        Cron(settings["cron"], timezone=settings["timezone"])
    except Exception as error:  # pydantic validation: a bad cron string or time zone
        raise ValueError(f"{path}: schedule.cron {settings['cron']!r} / timezone {settings['timezone']!r}: "
                         f"{error}") from None
    return settings


def build_deployments(repo: str | os.PathLike = ".", params_file: str | os.PathLike | None = None,
                      source: str | os.PathLike | None = None) -> list:
    """The two RunnerDeployments (not applied: `main` applies them; a test can inspect them offline)."""
    from prefect import Flow
    from prefect.schedules import Cron

    repo = Path(repo).resolve()
    source = Path(source).resolve() if source else repo
    settings = schedule_settings(params_file or repo / "params.yaml")
    flow = Flow.from_source(source=str(source), entrypoint=ENTRYPOINT)
    job = {"env": dict(TELEMETRY_OFF)}
    gpu = flow.to_deployment(
        name="retrain-gpu",
        schedules=[Cron(settings["cron"], timezone=settings["timezone"])],
        work_pool_name=settings["work_pool_gpu"],
        parameters={"repo": str(repo), "max_concurrent_training": int(settings["gpu_concurrent_training"])},
        job_variables=job, concurrency_limit=1, tags=["hushkit", "gpu"],
        description="Scheduled retrain on a GPU host: DVC pipeline, leaderboard artifact, promotion.",
    )
    cpu = flow.to_deployment(
        name="retrain-cpu",
        work_pool_name=settings["work_pool_cpu"],
        parameters={"repo": str(repo)},
        job_variables=job, concurrency_limit=1, tags=["hushkit", "cpu"],
        description="On-demand retrain on a CPU host (same params): prefect deployment run retrain/retrain-cpu",
    )
    return [gpu, cpu]


def ensure_process_pool(name: str) -> bool:
    """Create work pool `name` (type process, Prefect's default job template) unless it exists; True if created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
            return True


def main(argv: list[str] | None = None) -> int:
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    parser = argparse.ArgumentParser(prog="python -m pipelines.deploy", description=(
        "Apply the retrain flow's deployments (retrain-gpu on params.yaml's schedule, retrain-cpu on demand) to the "
        "Prefect server at PREFECT_API_URL, creating their process work pools if missing."))
    parser.add_argument("--repo", default=".", help="the DVC repo the runs retrain (default: .)")
    parser.add_argument("--source", help="the checkout holding pipelines/retrain.py (default: --repo)")
    parser.add_argument("--params", help="params file with the schedule section (default: <repo>/params.yaml)")
    parser.add_argument("--only", choices=["gpu", "cpu"], help="apply one deployment only")
    parser.add_argument("--no-create-pools", dest="create_pools", action="store_false",
                        help="fail rather than create a missing work pool")
    args = parser.parse_args(argv)
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            print("PREFECT_API_URL is not set: a deployment needs a Prefect server, e.g.\n"
                  "  prefect server start --host 127.0.0.1 --port 4200 &\n"
                  "  export PREFECT_API_URL=http://127.0.0.1:4200/api", file=sys.stderr)
            return 2
    deployments = build_deployments(args.repo, args.params, args.source)
    if args.only:
        deployments = [d for d in deployments if d.name == f"retrain-{args.only}"]
    for deployment in deployments:
        if args.create_pools and ensure_process_pool(deployment.work_pool_name):
            print(f"created work pool {deployment.work_pool_name} (process)")
        deployment_id = deployment.apply()
        schedule = ", ".join(f"cron {s.schedule.cron} ({s.schedule.timezone})" for s in deployment.schedules)
        print(f"{FLOW_NAME}/{deployment.name}: {deployment_id} -> pool {deployment.work_pool_name}; "
              f"{schedule or 'no schedule (run on demand)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
