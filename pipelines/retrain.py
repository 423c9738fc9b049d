"""The `retrain` flow: the DVC pipeline, stage group by stage group, as Prefect tasks.

    download → data (the other stages upstream of training: mix, rirs, features, ...) → train@<arch> (one task
    each) → baselines + evaluate@<arch>
    → export@<arch> → the rest (`dvc repro`: summary) → promotion (`hushkit promote`) → artifact `leaderboard`

dvc.yaml stays the one definition of the stages: every task runs `dvc repro <stages>`, so DVC decides what is out
of date, runs the stage commands, caches the outputs and updates dvc.lock; the flow adds the order, retries
(the download, the transient part), a timeout per training, clear failures and the report.

Where it runs: with no profile, override or architecture list, in `repo` itself (what `dvc repro` would do there).
Otherwise in a work copy of `repo` (its files minus what git ignores, params.yaml = params.yaml + profile +
overrides; kept after the run, `workdir`), as `dvc exp run --temp` would: `repo`'s params.yaml and data/ stay
untouched, while the copy shares `repo`'s DVC cache (stages already run with the same inputs are restored, not
rerun) and `repo`'s MLflow store (a restored train stage's checkpoint finds its training run there by its sha256;
the registry's promotion gate compares test sets, so a profile's model on other data is refused, not promoted).

Training concurrency: DVC holds a lock on the whole repo while `dvc repro` runs, so two stages never run at once in
one workspace. `max_concurrent_training` 1 (the default; what a 2-core CPU wants) trains one architecture after
the other in the workspace. N > 1 trains up to N at once, each in its own lane: a throw-away copy of the
workspace that shares its DVC cache and links the data stages' outputs, where `dvc repro --single-item train@<arch>` runs;
the workspace then restores that stage from DVC's run cache (same command, deps and params: nothing is trained
twice) and the lane is deleted. On a GPU host small models share the GPU well (docs/orchestration.md).

Run it:  python -m pipelines.retrain [--profile tiny] [-S key=value ...] [--arch crced ...] [--no-promote] [-j N]
"""
from __future__ import annotations

import os

# Telemetry off (importing hushkit sets it) and time for the ephemeral server to start, before Prefect is imported
# (it reads its settings then; its ephemeral server inherits this process's environment).
import hushkit  # noqa: F401
# Prefect waits 20 s for its ephemeral server by default; the first start (database set-up) on a busy 2-core machine
# takes longer. A server that cannot start is still reported, at the end of this wait.
EPHEMERAL_STARTUP = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}
for _name, _value in EPHEMERAL_STARTUP.items():
    os.environ.setdefault(_name, _value)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

from hushkit.params import load_params  # noqa: E402
from hushkit.tracking import tracking_uri  # noqa: E402

if __package__ != "pipelines":  # loaded by path (a deployment's entrypoint), perhaps from outside the repo root:
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # the repo root, where `pipelines.*` below lives
from pipelines.dvc_runner import (  # noqa: E402
    TAIL_LINES, StageFailed, command_env, dvc_cache_dir, run_dvc, stage_list, tool)
from pipelines.overrides import effective_params  # noqa: E402
from pipelines.workspace import make_lane, prepare_work_copy  # noqa: E402

ARTIFACT_KEY = "leaderboard"
LEADERBOARD = Path("data") / "summary" / "leaderboard.md"
SUMMARY = Path("data") / "summary" / "summary.json"
MODEL_STAGES = ("train@", "baseline@", "evaluate@", "export@")  # per system; the others are data stages
PROMOTE_EXIT_CODES = {0: "promoted", 1: "refused"}  # anything else: "error" (2: could not act)
EXPERIMENT_SNIPPET = "import json, sys; from hushkit import tracking; tracking.setup(json.loads(sys.argv[1]))"
PARENT_SNIPPET = ("from hushkit import tracking; from hushkit.params import load_params; p = load_params(); "
                  "print(tracking.parent_run_id(tracking.setup(p.get('mlflow', {})), p))")


# --- tasks ------------------------------------------------------------------------------------------------------

def _log() -> Callable[[str], None]:
    return get_run_logger().info


@task(name="download", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10),
      retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def download_stage(workdir: str, extra_env: dict[str, str]) -> None:
    """`dvc repro download`: the corpus, the part that reaches out (retried with exponential backoff)."""
    run_dvc(["repro", "download"], workdir, command_env(extra_env), log=_log(), what="download")


@task(name="repro", task_run_name="{label}", cache_policy=NO_CACHE)
def repro_stages(label: str, workdir: str, extra_env: dict[str, str], targets: list[str],
                 timeout_s: float | None = None) -> None:
    """`dvc repro <targets>` (all stages when `targets` is empty)."""
    run_dvc(["repro", *targets], workdir, command_env(extra_env), timeout=timeout_s, log=_log(), what=label)


@task(name="train", task_run_name="train@{arch}", cache_policy=NO_CACHE)
def train_stage(arch: str, workdir: str, extra_env: dict[str, str], timeout_s: float, lane: str | None = None,
                inputs: tuple[str, ...] = ()) -> str:
    """`dvc repro train@<arch>` in the workspace, or in a lane (with the `inputs` stages' outputs checked out there)
    that the workspace then restores it from."""
    log, env, stage = _log(), command_env(extra_env), f"train@{arch}"
    if lane is None:
        run_dvc(["repro", stage], workdir, env, timeout=timeout_s, log=log, what=stage)
        return "trained in the workspace"
    shutil.copy2(Path(workdir) / "dvc.lock", Path(lane) / "dvc.lock")  # the data stages as the workspace has them
    run_dvc(["checkout", *inputs], lane, env, log=log, what=f"{stage} (lane checkout of {', '.join(inputs)})")
    run_dvc(["repro", "--single-item", stage], lane, env, timeout=timeout_s, log=log, what=stage)
    restored = run_dvc(["--wait-for-lock", "repro", "--single-item", stage], workdir, env, log=log,
                       what=f"{stage} (restore from the run cache)")
    _bring_back_untracked(Path(lane), Path(workdir))
    if f"Running stage '{stage}'" in restored:
        get_run_logger().warning(f"{stage}: the workspace did not find the lane's run in DVC's run cache and "
                                 "trained again")
        return "trained in a lane, then again in the workspace"
    return "trained in a lane, restored in the workspace"


def _bring_back_untracked(lane: Path, workdir: Path) -> None:
    """Files a stage writes beside its DVC outputs on purpose (its timings) are not in the run cache the workspace
    restores from: copy them from the lane. DVC's outputs there are links to the cache; what is a regular file
    under the lane's data/ and missing in the workspace is such a file."""
    for path in sorted((lane / "data").rglob("*")):
        target = workdir / path.relative_to(lane)
        if path.is_file() and not path.is_symlink() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


@task(name="promote", cache_policy=NO_CACHE)
def promote_stage(workdir: str, extra_env: dict[str, str], reason: str = "retrain flow") -> dict[str, Any]:
    """`hushkit promote` in the workspace: exit 0 promoted, anything else refused (its output says why)."""
    env = command_env(extra_env)
    try:
        hushkit = tool("hushkit")
    except FileNotFoundError:
        return {"decision": "not available", "reason": "no `hushkit` command"}
    probe = subprocess.run([hushkit, "promote", "--help"], cwd=workdir, env=env, capture_output=True, text=True,
                           timeout=300)
    if probe.returncode != 0:
        return {"decision": "not available", "reason": "`hushkit promote` does not exist in this version"}
    command = [hushkit, "promote"]
    if "--reason" in probe.stdout:
        command += ["--reason", reason]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=3600)
    output = (done.stdout + done.stderr).strip()
    tail = "\n".join(output.splitlines()[-TAIL_LINES:])
    for line in tail.splitlines():
        _log()(line)
    # hushkit promote: 0 promoted (or already champion), 1 refused by the rules, 2 could not act.
    decision = PROMOTE_EXIT_CODES.get(done.returncode, "error")
    return {"decision": decision, "exit_code": done.returncode, "output": tail}


# --- the flow ---------------------------------------------------------------------------------------------------

@flow(name="retrain")
def retrain(
    profile: str | None = None,
    overrides: list[str] | None = None,
    architectures: list[str] | None = None,
    promote: bool = True,
    repo: str = ".",
    workdir: str | None = None,
    max_concurrent_training: int = 1,
    train_timeout_minutes: float = 240.0,
    download_retries: int = 3,
    download_backoff_seconds: float = 10.0,
    report: str | None = None,
) -> dict[str, Any]:
    """Retrain the hushkit pipeline through DVC, then promote the best model (see the module docstring).

    profile: an overlay of params.yaml (a name in profiles/ or a path); overrides: `dvc exp run -S`-style
    `key=value` items; architectures: train these (sets train.architectures); promote: run `hushkit promote`;
    repo: the DVC repo; workdir: where a profile/override run works (default: a new temporary directory);
    max_concurrent_training: architectures trained at once (> 1: in lanes); train_timeout_minutes: per
    architecture; download_retries / download_backoff_seconds: the download stage's retries (delays double);
    report: also write the markdown report to this file."""
    logger = get_run_logger()
    source = Path(repo).resolve()
    base_env = command_env()
    params = effective_params(source, profile, overrides, architectures)
    in_place = workdir is None and params == load_params(source / "params.yaml")
    if in_place:
        work = source
    else:
        work = Path(workdir).resolve() if workdir else Path(tempfile.mkdtemp(prefix="hushkit-retrain-"))
        prepare_work_copy(source, params, work, base_env)
        logger.info(f"params differ from {source / 'params.yaml'}: working in a copy, {work}")
    # Every dvc call, lanes included, logs to the repo's store (a relative sqlite path resolved against `repo`).
    extra_env = {"MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI")
                 or tracking_uri(params.get("mlflow", {}), cwd=str(source))}
    if not in_place:
        # An experiment MLflow creates keeps its artifacts under the creating process's ./mlruns: create it (if new)
        # from the repo, not from the copy.
        _python(EXPERIMENT_SNIPPET, source, extra_env, json.dumps(params.get("mlflow", {})))
    result: dict[str, Any] = {
        "flow_run_id": str(flow_run.id), "repo": str(source), "workdir": str(work), "in_place": in_place,
        "profile": profile, "overrides": list(overrides or []), "max_concurrent_training": max_concurrent_training,
        "stages": {}, "promotion": {"decision": "not reached"}}
    try:
        stages = stage_list(work, command_env(extra_env))
        archs = [name.split("@", 1)[1] for name in stages if name.startswith("train@")]
        result["architectures"] = archs
        logger.info(f"{len(stages)} stages; architectures: {', '.join(archs)}")

        if "download" in stages:
            download_stage.with_options(
                retries=download_retries,
                retry_delay_seconds=exponential_backoff(backoff_factor=download_backoff_seconds),
            )(str(work), extra_env)
            result["stages"]["download"] = "done"
        # Every stage upstream of training (features, the RIR bank, ...): built once here, checked out in the lanes
        data = tuple(s for s in stages if not s.startswith(MODEL_STAGES) and s not in ("download", "summary"))
        if data:
            repro_stages("data", str(work), extra_env, list(data))
            result["stages"].update(dict.fromkeys(data, "done"))

        result["stages"].update(_train_all(archs, work, extra_env, max_concurrent_training,
                                           train_timeout_minutes * 60, data))

        scoring = [s for s in stages if s.startswith(("baseline@", "evaluate@"))]
        if scoring:
            repro_stages("evaluate", str(work), extra_env, scoring)
            result["stages"]["evaluate"] = "done"
        exports = [s for s in stages if s.startswith("export@")]
        if exports:
            repro_stages("export", str(work), extra_env, exports)
            result["stages"]["export"] = "done"
        repro_stages("summary", str(work), extra_env, [])  # everything left (summary): dvc repro, no targets
        result["stages"]["summary"] = "done"

        result["promotion"] = (promote_stage(str(work), extra_env, reason=f"retrain flow run {flow_run.name}")
                               if promote else {"decision": "not requested"})
    except Exception as error:
        result["error"] = str(error)
        _publish(result, work, report)
        raise
    summary = work / SUMMARY
    if summary.is_file():
        result["best"] = json.loads(summary.read_text()).get("best")
    result["artifact"] = _publish(result, work, report)
    logger.info(f"promotion: {result['promotion']['decision']}")
    return result


def _train_all(archs: list[str], work: Path, extra_env: dict[str, str], concurrency: int,
               timeout_s: float, inputs: tuple[str, ...]) -> dict[str, str]:
    """One task per architecture, at most `concurrency` at once; raises after all of them ran if any failed."""
    outcome: dict[str, str] = {}
    failures: dict[str, str] = {}
    lanes_root = None
    try:
        if concurrency <= 1 or len(archs) <= 1:
            lanes: list[str | None] = [None]
        else:
            lanes_root = Path(tempfile.mkdtemp(prefix="hushkit-lanes-"))
            cache = dvc_cache_dir(work, command_env(extra_env))
            # Opens the MLflow store (creating it before concurrent trainings race to) and names the parent run
            # for the lanes, whose own git state would key another one.
            extra_env = {**extra_env, "HUSHKIT_PARENT_RUN_ID": _parent_run(work, extra_env)}
            lanes = []
            for index in range(min(concurrency, len(archs))):
                lane = lanes_root / f"lane{index}"
                make_lane(work, lane, cache)
                lanes.append(str(lane))
        pending, running = list(archs), {}
        while pending or running:
            while pending and lanes:
                arch, lane = pending.pop(0), lanes.pop(0)
                running[train_stage.submit(arch, str(work), extra_env, timeout_s, lane, inputs)] = (arch, lane)
            done = next(iter(as_completed(list(running))))
            arch, lane = running.pop(done)
            lanes.append(lane)
            value = done.result(raise_on_failure=False)
            if isinstance(value, BaseException):
                failures[arch] = str(value)
            else:
                outcome[f"train@{arch}"] = value
    finally:
        if lanes_root is not None:
            shutil.rmtree(lanes_root, ignore_errors=True)
    if failures:
        details = "\n\n".join(f"train@{arch}: {message}" for arch, message in failures.items())
        raise StageFailed(f"training failed for {', '.join(failures)} (the others finished: "
                          f"{', '.join(sorted(outcome)) or 'none'})\n{details}")
    return outcome


def _python(code: str, cwd: Path, extra_env: dict[str, str], *args: str) -> str:
    """`python -c code args` in `cwd` (hushkit's own helpers, e.g. for MLflow, which this process never imports)."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=command_env(extra_env),
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise StageFailed(f"MLflow set-up failed (`python -c {code!r}` in {cwd}):\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def _parent_run(work: Path, extra_env: dict[str, str]) -> str:
    """The pipeline's MLflow parent run as the workspace's stages would find it: lanes log their training under it
    (a lane's own git state would otherwise name another one)."""
    return _python(PARENT_SNIPPET, work, extra_env).splitlines()[-1]


def report_markdown(result: dict[str, Any], work: Path) -> str:
    """The run's report: what ran where, the leaderboard (data/summary/leaderboard.md) and the promotion."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# hushkit retrain, {when}", "",
             "| | |", "|---|---|",
             f"| workspace | `{result['workdir']}`" + (" (in place)" if result["in_place"] else
                                                     f" (a copy of `{result['repo']}`)") + " |",
             f"| profile | {result['profile'] or 'none (params.yaml)'} |",
             f"| overrides | {', '.join(f'`{o}`' for o in result['overrides']) or 'none'} |",
             f"| architectures | {', '.join(result.get('architectures', [])) or '?'} |",
             f"| training | {result['max_concurrent_training']} at a time |", ""]
    if "error" in result:
        lines += ["## Failed", "", "```", result["error"][-6000:], "```", ""]
    board = work / LEADERBOARD
    lines += ["## Leaderboard", ""]
    lines += [board.read_text().strip() if board.is_file() and "error" not in result
              else "(no leaderboard: the pipeline did not finish)", ""]
    promotion = result["promotion"]
    lines += ["## Promotion", "", f"**Decision: {promotion['decision']}**", ""]
    if promotion.get("reason"):
        lines += [promotion["reason"], ""]
    if promotion.get("output"):
        lines += ["```", promotion["output"], "```", ""]
    return "\n".join(lines)


def _publish(result: dict[str, Any], work: Path, report: str | None) -> str:
    markdown = report_markdown(result, work)
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(markdown)
    artifact = create_markdown_artifact(markdown=markdown, key=ARTIFACT_KEY,
                                        description="hushkit retrain: leaderboard and promotion decision")
    return str(artifact)


# --- command line -----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.retrain", description=(
        "Run the retrain flow (Prefect; ephemeral unless PREFECT_API_URL points at a server) on the DVC pipeline."))
    parser.add_argument("--repo", default=".", help="the DVC repo (default: .)")
    parser.add_argument("--profile", help="overlay of params.yaml: a name in profiles/ (e.g. tiny) or a path")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="params override, as dvc exp run -S (repeatable)")
    parser.add_argument("--arch", dest="architectures", action="append", metavar="NAME",
                        help="train this architecture (repeatable; default: train.architectures)")
    parser.add_argument("--no-promote", dest="promote", action="store_false", help="skip `hushkit promote`")
    parser.add_argument("--workdir", help="work copy for a profile/override run (default: a new temp dir)")
    parser.add_argument("-j", "--max-concurrent-training", type=int, default=1, metavar="N",
                        help="architectures trained at once (default 1; > 1 trains in lanes)")
    parser.add_argument("--train-timeout-minutes", type=float, default=240.0, metavar="MIN",
                        help="stop an architecture's training after this long (default 240)")
    parser.add_argument("--download-retries", type=int, default=3, metavar="N")
    parser.add_argument("--download-backoff-seconds", type=float, default=10.0, metavar="S",
                        help="first retry delay of the download stage; it doubles each time (default 10)")
    parser.add_argument("--report", help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    try:
        result = retrain(**vars(args))
    except (StageFailed, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"retrain failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
