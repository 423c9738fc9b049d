"""MLflow plumbing: one place decides the tracking URI and experiment, so every stage logs to the same store."""
from __future__ import annotations

import os
from typing import Any

DEFAULT_URI = "sqlite:///mlflow.db"


# `dvc exp run --temp/--queue` runs the pipeline in a copy under <repo>/.dvc/tmp/exps/: a relative sqlite store
# there would be a fresh, throw-away one, so it resolves against the repo the experiment came from.
EXPERIMENT_COPY = os.path.join(".dvc", "tmp", "exps") + os.sep


def tracking_uri(section: dict[str, Any], cwd: str | None = None) -> str:
    """MLFLOW_TRACKING_URI (env) wins over params, so CI and users can point at a server without editing params.
    A relative sqlite path is the user's repo's, also inside a DVC experiment's temporary copy."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or section.get("tracking_uri") or DEFAULT_URI
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or os.path.isabs(uri[len(prefix):]):
        return uri
    cwd = os.path.abspath(cwd or os.getcwd()) + os.sep
    root = cwd.split(os.sep + EXPERIMENT_COPY)[0] if os.sep + EXPERIMENT_COPY in cwd else cwd.rstrip(os.sep)
    return prefix + os.path.join(root, uri[len(prefix):])


def setup(section: dict[str, Any]):
    """Configure mlflow for this process and return the module (imported lazily: it costs seconds)."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri(section)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(section.get("experiment", "hushkit"))
    return mlflow


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params → dotted keys, as MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


# --- one parent run per pipeline run ---------------------------------------------------------------------------
# DVC runs every stage as its own process, so the stages agree on their parent run through a key they can all
# compute: the code (commit plus uncommitted changes) and the params that shape the trained models. Every
# train@<arch> of one `dvc repro` / `dvc exp run` logs a child run under it; the summary stage logs the
# comparison to it and closes it. An orchestrator (Prefect) may pass its own parent through PARENT_ENV.
PARENT_ENV = "HUSHKIT_PARENT_RUN_ID"
PIPELINE_TAG = "hushkit.pipeline"
PIPELINE_SECTIONS = ("download", "mix", "features", "train", "mlflow")
CODE_PATHS = ("src", "dvc.yaml", "pyproject.toml")


def _git(*args: str) -> str:
    import subprocess

    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def git_commit() -> str:
    return _git("rev-parse", "HEAD").strip() or "unknown"


def pipeline_key(params: dict[str, Any]) -> str:
    """Identity of one pipeline configuration: commit, uncommitted changes, and the params that shape the models."""
    import hashlib
    import json

    # Uncommitted changes to the code only: dvc.lock changes while the pipeline runs.
    changes = _git("diff", "HEAD", "--", *CODE_PATHS)
    identity = {"commit": git_commit(), "changes": hashlib.sha256(changes.encode()).hexdigest(),
                "params": {name: params.get(name) for name in PIPELINE_SECTIONS}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parent_run_id(mlflow, params: dict[str, Any]) -> str:
    """The pipeline's parent run (created on first use): PARENT_ENV if set, else the run tagged with this key."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(params.get("mlflow", {}).get("experiment", "hushkit"))
    key = pipeline_key(params)
    found = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{key}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment.experiment_id, run_name=f"pipeline-{key[:8]}",
                            tags={PIPELINE_TAG: key, "git_commit": git_commit(), "stage": "pipeline"})
    client.log_param(run.info.run_id, "architectures", ",".join(params.get("train", {}).get("architectures", [])))
    return run.info.run_id


# --- the training run of a checkpoint ---------------------------------------------------------------------------
# evaluate@<arch> and export@<arch> log into the MLflow run that trained the checkpoint they read. They find it by
# the checkpoint's sha256, which train@<arch> tags its run with: content-addressed, so it holds for a train stage
# DVC restored from its cache and in a `dvc exp run --temp/--queue` copy, and no run id has to sit in a DVC output
# (where a new id on every run would make identical results look changed).
CHECKPOINT_TAG = "hushkit.checkpoint_sha256"
TRAINED_ELSEWHERE_TAG = "hushkit.trained_elsewhere"


def training_run_id(mlflow, section: dict[str, Any], checkpoint, *, architecture: str, train_params: dict[str, Any],
                    stage: str) -> str:
    """The newest run of the experiment (`section`: the mlflow params) tagged with `checkpoint`'s sha256. A store without one (the
    checkpoint was trained against another store, or its run was deleted) gets a new run for it, tagged with the
    checkpoint and TRAINED_ELSEWHERE_TAG and holding the checkpoint's own training params, and `stage` prints one
    line saying so: the scores and the registry entry are logged either way."""
    import sys

    from mlflow import MlflowClient

    from hushkit.io import sha256_file

    sha = sha256_file(checkpoint)
    client = MlflowClient()
    experiment = mlflow.set_experiment(section.get("experiment", "hushkit"))
    found = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{CHECKPOINT_TAG}` = '{sha}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment.experiment_id, run_name=f"train-{architecture}",
                            tags={CHECKPOINT_TAG: sha, TRAINED_ELSEWHERE_TAG: "true", "stage": "train",
                                  "architecture": architecture})
    for key, value in flatten(train_params, "train.").items():
        client.log_param(run.info.run_id, key, value)
    print(f"{stage}: no run in the MLflow store {mlflow.get_tracking_uri()} trained {checkpoint} (sha256 {sha[:12]}; "
          f"trained against another store): logging to a new run {run.info.run_id} tagged with it", file=sys.stderr)
    return run.info.run_id
