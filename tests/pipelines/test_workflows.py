"""The GitHub workflows are valid YAML and run the project's own commands: CI runs the README's `make test`;
retrain runs the retrain flow on a self-hosted GPU runner on params.yaml's schedule, from a fresh checkout between a
dvc pull and a dvc push, and uploads the report."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipelines.deploy import schedule_settings

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def commands(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def test_ci_runs_the_readmes_test_command_on_push_and_pull_request():
    workflow = load("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert "make test" in (ROOT / "README.md").read_text()
    run = commands(workflow)
    if "make test" not in run:  # through the CI script, which is `make test`
        script = re.search(r"bash (\S+)", run).group(1)
        assert "make test" in (ROOT / script).read_text()
    [job] = workflow["jobs"].values()
    python = next(step for step in job["steps"] if "setup-python" in step.get("uses", ""))
    assert str(python["with"]["python-version"]) == "3.11"


def test_retrain_runs_the_flow_on_a_gpu_runner_on_the_params_schedule_and_uploads_the_report():
    workflow = load("retrain.yml")
    assert "workflow_dispatch" in workflow["on"]
    assert [entry["cron"] for entry in workflow["on"]["schedule"]] == [schedule_settings(ROOT / "params.yaml")["cron"]]
    [job] = workflow["jobs"].values()
    assert set(job["runs-on"]) == {"self-hosted", "gpu"}
    run = commands(workflow)
    assert ".venv/bin/python -m pipelines.retrain" in run and (ROOT / "pipelines" / "retrain.py").is_file()
    for target in re.findall(r"\bmake (\w+)", run):
        assert target in make_targets(), target
    upload = next(step for step in job["steps"] if "upload-artifact" in step.get("uses", ""))
    assert upload["if"] == "always()" and upload["with"]["path"].rstrip("/") == "retrain-report"
    assert "data/summary/{report.html,leaderboard.md" in run


def test_retrain_keeps_nothing_on_the_runner_it_pulls_before_and_pushes_after():
    workflow = load("retrain.yml")
    [job] = workflow["jobs"].values()
    checkout = next(step for step in job["steps"] if "actions/checkout" in step.get("uses", ""))
    assert (checkout.get("with") or {}).get("clean", True) is not False   # a fresh checkout each run
    runs = [step.get("run", "") for step in job["steps"]]
    pull = next(i for i, r in enumerate(runs) if "dvc pull" in r)
    retrain = next(i for i, r in enumerate(runs) if "pipelines.retrain" in r)
    push = next(i for i, r in enumerate(runs) if re.search(r"dvc\"? push", r))
    assert pull < retrain < push
    assert job["steps"][push]["if"].startswith("always()")   # finished stages are cached even when a later one fails
    # the registry is the team's server, not a file in the checkout
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ vars.MLFLOW_TRACKING_URI }}"
