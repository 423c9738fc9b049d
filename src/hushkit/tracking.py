"""MLflow plumbing: one place decides the tracking URI and experiment, so every stage logs to the same store; the
pipeline's parent run; and a lock over a store shared by processes and hosts (`store_lock`)."""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from hushkit.workspace import repo_root

DEFAULT_URI = "sqlite:///mlflow.db"


def tracking_uri(section: dict[str, Any], cwd: str | None = None) -> str:
    """MLFLOW_TRACKING_URI (env) wins over params, so CI and users can point at a server without editing params.
    A relative sqlite path is the user's repo's, also inside a DVC experiment's temporary copy."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or section.get("tracking_uri") or DEFAULT_URI
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or os.path.isabs(uri[len(prefix):]):
        return uri
    # in a `dvc exp run --temp` copy a relative store would be a throw-away one: the user's repo's instead
    return prefix + os.path.join(repo_root(cwd), uri[len(prefix):])


def setup(section: dict[str, Any], cwd: str | os.PathLike | None = None):
    """Configure mlflow for this process and return the module (imported lazily: it costs seconds). `cwd`: the
    folder a relative sqlite store is resolved from (default: the current one)."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri(section, None if cwd is None else str(cwd))
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


# --- a lock over a tracking store shared by processes and hosts ------------------------------------------------
# MLflow offers no transaction or compare-and-set on a tag, but creating a registered model whose name is taken
# fails atomically, in a sqlite store and behind a tracking server alike. The lock on `resource` is therefore a
# numbered series of registered models `<resource>.lock.<n>`: whoever creates generation n+1 while generation n is
# released (or its lease has run out) holds the lock. A crashed holder blocks the others only until its lease ends;
# numbers are never reused while the newest generation exists, so no two processes can both take over from it.
LOCK_OF_TAG = "hushkit.lock_of"        # on every generation: the resource it locks
LOCK_LEASE_SECONDS = 120.0             # a holder that died (SIGKILL, lost host) blocks others this long at most
LOCK_WAIT_SECONDS = 300.0              # how long to wait for a busy lock before giving up


class LockError(RuntimeError):
    """The lock could not be taken in time, or its lease ran out while held (the one-line message says which)."""


def _lock_name(resource: str, generation: int) -> str:
    return f"{resource}.lock.{generation}"


def _generations(client: Any, resource: str) -> dict[int, Any]:
    """The lock's generations in the store, by number."""
    escaped = resource.replace("'", "\\'")
    found: dict[int, Any] = {}
    token = None
    while True:
        page = client.search_registered_models(f"tags.`{LOCK_OF_TAG}` = '{escaped}'", page_token=token)
        for model in page:
            prefix, _, number = model.name.rpartition(".")
            if prefix == f"{resource}.lock" and number.isdigit():
                found[int(number)] = model
        token = page.token
        if not token:
            return found


def _is_free(model: Any, now: float) -> bool:
    tags = model.tags
    if "released_at" in tags:
        return True
    try:
        return float(tags.get("expires", "0")) < now
    except ValueError:   # not written by this code: nothing to honour
        return True


def _holder(model: Any) -> str:
    tags = model.tags
    return (f"{tags.get('holder', '?')} (since {tags.get('acquired_at', '?')}, lease until "
            f"{tags.get('expires_at', '?')})")


class StoreLock:
    """A held lock (see `store_lock`); `ensure_held()` before writing refuses to write on a lost lease."""

    def __init__(self, client: Any, resource: str, generation: int, token: str, expires: float):
        self.client, self.resource, self.generation = client, resource, generation
        self.token, self.expires = token, expires

    def ensure_held(self) -> None:
        import time

        newest = max(_generations(self.client, self.resource), default=0)
        if time.time() >= self.expires or newest != self.generation:
            raise LockError(f"lost the lock on {self.resource!r}: its lease ran out and another process may have "
                            "taken it; nothing was written, try again")

    def release(self) -> None:
        import time

        from mlflow.exceptions import MlflowException

        try:
            self.client.set_registered_model_tag(_lock_name(self.resource, self.generation), "released_at",
                                                 _utc(time.time()))
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":   # gone: its lease ran out and a newer holder pruned it
                raise


def _utc(seconds: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def _acquire(client: Any, resource: str, lease: float, wait: float, poll: float) -> StoreLock:
    import random
    import socket
    import time
    import uuid

    from mlflow.exceptions import MlflowException

    token = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait
    delay = poll
    while True:
        generations = _generations(client, resource)
        newest = max(generations, default=0)
        current = generations.get(newest)
        taken, expires = 0, 0.0
        if current is not None and current.tags.get("holder") == token:
            # Our creation went through although its reply did not reach us.
            taken, expires = newest, float(current.tags["expires"])
        elif current is None or _is_free(current, time.time()):
            now = time.time()
            expires = now + lease
            tags = {LOCK_OF_TAG: resource, "holder": token, "acquired_at": _utc(now), "expires": repr(expires),
                    "expires_at": _utc(expires), "lease_seconds": f"{lease:g}"}
            try:
                client.create_registered_model(
                    _lock_name(resource, newest + 1), tags=tags,
                    description=f"hushkit: serialises changes to {resource!r} (`hushkit promote/rollback`); "
                                "managed automatically, leave it alone")
                taken = newest + 1
            except MlflowException as err:
                if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                    raise          # not a lost race: the store itself failed
        if taken:
            generations = _generations(client, resource)
            if max(generations, default=0) == taken:
                for older in sorted(n for n in generations if n < taken):   # released or expired: prune them
                    try:
                        client.delete_registered_model(_lock_name(resource, older))
                    except MlflowException:
                        pass       # another holder pruned it first
                return StoreLock(client, resource, taken, token, expires)
            # A number below the newest (pruned earlier, created again on a stale view) holds nothing: hand it back.
            StoreLock(client, resource, taken, token, expires).release()
        if time.monotonic() > deadline:
            busy = _holder(generations[max(generations)]) if generations else "nobody"
            raise LockError(f"{resource!r} is busy: waited {wait:g} s for its lock, held by {busy}; try again "
                            "later")
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 1.5, 0.5)   # a waiting process notices a release within half a second


@contextlib.contextmanager
def store_lock(client: Any, resource: str, *, lease: float | None = None, wait: float | None = None,
               poll: float = 0.1) -> Iterator[StoreLock]:
    """Hold the store-wide lock on `resource` (e.g. a registered model's name) for the block: one holder at a time
    across processes and hosts sharing the store. Released on leaving the block, also by an exception."""
    lock = _acquire(client, resource, LOCK_LEASE_SECONDS if lease is None else lease,
                    LOCK_WAIT_SECONDS if wait is None else wait, poll)
    try:
        yield lock
    finally:
        lock.release()


# --- tags from whoever started the stage ------------------------------------------------------------------------
# A process that runs stages (a sweep running each trial as a DVC experiment) tags the runs they open without any
# params change: RUN_TAGS_ENV holds a JSON object of tag -> value, set on every run `attempt_run` opens.
RUN_TAGS_ENV = "HUSHKIT_RUN_TAGS"


def env_tags() -> dict[str, str]:
    """The tags RUN_TAGS_ENV asks for (none when unset)."""
    import json

    raw = os.environ.get(RUN_TAGS_ENV, "").strip()
    if not raw:
        return {}
    try:
        tags = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{RUN_TAGS_ENV}: not a JSON object of tag names to values ({err})") from None
    if not isinstance(tags, dict):
        raise ValueError(f"{RUN_TAGS_ENV}: not a JSON object of tag names to values: {raw[:80]}")
    return {str(key): str(value) for key, value in tags.items()}


# --- one run per attempt at a resumable job ---------------------------------------------------------------------
PREVIOUS_ATTEMPT_TAG = "hushkit.previous_attempt"   # on a run: the run of the attempt before it, which died
NEXT_ATTEMPT_TAG = "hushkit.next_attempt"           # on a dead attempt's run: the run of the attempt after it


@contextlib.contextmanager
def attempt_run(mlflow, marker: str | os.PathLike, **start_run: Any) -> Iterator[Any]:
    """`mlflow.start_run(**start_run)` for one attempt at a job that a later attempt may resume (training).

    `marker`, a small file beside the job's resumable state, names the run while it is open. A process killed with
    no chance to close its run (SIGKILL, out of memory, a lost machine) leaves the run RUNNING and the marker
    behind: the next attempt ends that run as KILLED, and the two runs name each other (PREVIOUS_ATTEMPT_TAG,
    NEXT_ATTEMPT_TAG), so no run shows as running forever. Each attempt keeps a run of its own, with its true status,
    times and durations, rather than reopening the dead one across the gap. The run carries the tags of
    RUN_TAGS_ENV (`env_tags`).

    The run samples the machine's use while it is open (MLflow's system metrics: system/cpu_utilization_percentage,
    system/system_memory_usage_megabytes, ..., and per GPU system/gpu_0_utilization_percentage, ... where NVML
    finds one), every MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL seconds (default 10); off with
    MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false."""
    from pathlib import Path

    from hushkit.io import write_json

    marker = Path(marker)
    tags = env_tags()   # a malformed RUN_TAGS_ENV fails before any run is opened
    previous = _close_abandoned_run(marker)
    wanted = os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true").strip().lower() not in ("false", "0")
    start_run.setdefault("log_system_metrics", wanted)
    try:
        with mlflow.start_run(**start_run) as run:
            write_json(marker, {"run_id": run.info.run_id, "tracking_uri": mlflow.get_tracking_uri()})
            if tags:
                mlflow.set_tags(tags)
            if previous is not None:
                client, dead = previous
                mlflow.set_tag(PREVIOUS_ATTEMPT_TAG, dead)
                client.set_tag(dead, NEXT_ATTEMPT_TAG, run.info.run_id)
            yield run
    finally:
        marker.unlink(missing_ok=True)   # the run is closed (FINISHED, or FAILED by an exception)


def _close_abandoned_run(marker: Any) -> tuple[Any, str] | None:
    """The run `marker` names, ended as KILLED if it is still RUNNING (its process died); its client and id."""
    import json

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        saved = json.loads(marker.read_text())
        run_id, uri = saved["run_id"], saved["tracking_uri"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"warning: {marker}: unreadable ({err}); cannot close the run of the attempt before")
        return None
    client = MlflowClient(tracking_uri=uri)
    try:
        if client.get_run(run_id).info.status != "RUNNING":
            return None
        client.set_terminated(run_id, "KILLED")
    except MlflowException as err:   # that store or run is gone: nothing left to close
        print(f"warning: cannot close run {run_id} of the attempt before at {uri}: {err.message}")
        return None
    print(f"closed run {run_id} as KILLED: the attempt before this one died while it ran")
    return client, run_id

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
