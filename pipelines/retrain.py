"""The `retrain` flow: the DVC pipeline in steps as Prefect tasks, then the registry's promotion.

    download (retried) → data (the stages upstream of training) → train@<arch> (a task each, or DVC's queue)
    → the rest (baselines, evaluations, exports, summary; the taggers' stages) → `hushkit promote` (and of the
    tagger, `hushkit promote --tagger`) → markdown artifact `leaderboard`

dvc.yaml stays the one definition of the stages and DVC decides what is out of date; the flow adds the order, the
download's retries, a time limit per training (it stops every process the training started), clear failures and the
report. hushkit.experiments runs the steps: `dvc repro` in the repo's workspace, or, with a profile, `-S` or `--arch`,
`dvc exp run --temp` with those overrides, leaving the workspace as it was; the run is then the DVC experiment
`--name` (`dvc exp show`, `dvc exp apply NAME`). Experiments start from a git commit.

Trainings at once (`-j N`): N = 1 (the default; what a 2-core CPU wants) trains one architecture after the other.
N > 1 queues one experiment per architecture (`dvc exp run --queue train@<arch>`, run by `dvc queue start -j N`), the
simplest split DVC runs in parallel; the workspace or the run's experiment then restores them from the run cache.
The first architecture trains alone: it creates the MLflow store and the parent run that the queued trainings log
under (starting together, they would race to). A queued training's timing.json stays in its copy (MLflow has it).

Run it:  python -m pipelines.retrain [--profile tiny] [-S key=value ...] [--arch crced ...] [--no-promote] [-j N]
"""
from __future__ import annotations

import os

# Before Prefect is imported (it reads its settings then; its ephemeral server inherits this environment): telemetry
# off (importing hushkit sets it), and longer than Prefect's 20 s for the ephemeral server's first start (database
# set-up) on a busy 2-core machine; a server that cannot start is still reported, at the end of this wait.
import hushkit  # noqa: F401
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

from hushkit.experiments import (Pipeline, StageFailed, architectures_override, experiment_name,  # noqa: E402
                                 profile_overrides, promote as run_promote, report_markdown)

ARTIFACT_KEY = "leaderboard"
LEADERBOARD, SUMMARY = "data/summary/leaderboard.md", "data/summary/summary.json"
# per system, and the taggers' (after the denoisers' training, beside their evaluation; tag-predict needs the best
# tagger); the others are data stages
MODEL_STAGES = ("train@", "baseline@", "evaluate@", "export@", "tag-train@", "tag-evaluate@", "tag-export@",
                "tag-summary", "tag-predict")


def _log():  # a task's logger, for dvc's output
    return get_run_logger().info


@task(name="download", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10),
      retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def download_stage(pipeline: Pipeline) -> None:
    """The corpus, the part that reaches out (retried with exponential backoff)."""
    pipeline.run(["download"], "download", log=_log())


@task(name="stages", task_run_name="{label}", cache_policy=NO_CACHE)
def run_stages(pipeline: Pipeline, label: str, targets: list[str]) -> None:
    """`targets` (every stage left when empty)."""
    pipeline.run(targets, label, log=_log())


@task(name="train", task_run_name="train@{arch}", cache_policy=NO_CACHE)
def train_stage(pipeline: Pipeline, arch: str, timeout_s: float) -> None:
    """train@<arch>, stopped past `timeout_s` with every process it started (no retry: not a transient failure)."""
    pipeline.run([f"train@{arch}"], f"train@{arch}", timeout=timeout_s, log=_log())


@task(name="train-queue", cache_policy=NO_CACHE)
def train_in_queue(pipeline: Pipeline, archs: list[str], jobs: int, timeout_s: float) -> dict[str, str | None]:
    """train@<arch> of each of `archs` in DVC's queue, `jobs` at a time; arch → None when it trained, else why not."""
    return pipeline.train_in_queue(archs, jobs, timeout_s, log=_log())


@task(name="promote", cache_policy=NO_CACHE)
def promote_stage(repo: str, reason: str, tagger: bool = False) -> dict[str, Any]:
    return run_promote(repo, reason, log=_log(), tagger=tagger)


@flow(name="retrain")
def retrain(profile: str | None = None, overrides: list[str] | None = None, architectures: list[str] | None = None,
            promote: bool = True, repo: str = ".", name: str | None = None, max_concurrent_training: int = 1,
            train_timeout_minutes: float = 240.0, download_retries: int = 3, download_backoff_seconds: float = 10.0,
            report: str | None = None) -> dict[str, Any]:
    """Retrain through DVC, then promote the best model (see the module docstring and `main`'s options)."""
    source = Path(repo).resolve()
    sets = list(overrides or []) + architectures_override(architectures)  # the profile's own: in the experiment
    pipeline = Pipeline(source, tuple(profile_overrides(profile, source) + sets), name or experiment_name())
    result: dict[str, Any] = {
        "flow_run_id": str(flow_run.id), "repo": str(source), "in_place": pipeline.in_place,
        "experiment": None if pipeline.in_place else pipeline.name, "profile": profile, "overrides": sets,
        "max_concurrent_training": max_concurrent_training, "stages": {}, "promotion": {"decision": "not reached"}}
    steps: list[str] = []  # the labels of the steps that ran as experiments of their own, removed at the end
    try:
        pipeline.check(queue=max_concurrent_training > 1)
        stages = pipeline.stages()
        if "download" in stages:
            download_stage.with_options(retries=download_retries, retry_delay_seconds=exponential_backoff(
                backoff_factor=download_backoff_seconds))(pipeline)
            result["stages"]["download"], steps = "done", ["download"]
        data = [s for s in stages if not s.startswith(MODEL_STAGES) and s not in ("download", "summary")]
        if data:  # built once here: the trainings restore them
            run_stages(pipeline, "data", data)
            result["stages"].update(dict.fromkeys(data, "done"))
            steps.append("data")
        archs = result["architectures"] = pipeline.architectures(stages, steps[-1] if steps else "")
        get_run_logger().info(f"{len(stages)} stages; architectures: {', '.join(archs)}")
        steps += [f"train@{arch}" for arch in archs]
        result["stages"].update(_train_all(pipeline, archs, max_concurrent_training, train_timeout_minutes * 60))
        run_stages(pipeline, "pipeline" if pipeline.in_place else pipeline.name, [])
        result["stages"]["pipeline"] = "done"
        result["promotion"] = (promote_stage(str(source), f"retrain flow run {flow_run.name}") if promote
                               else {"decision": "not requested"})
        if promote and "tag-summary" in stages:   # the best tagger is the taggers' @challenger
            result["tagger_promotion"] = promote_stage.with_options(task_run_name="promote-tagger")(
                str(source), f"retrain flow run {flow_run.name}", tagger=True)
    except Exception as error:
        result["error"] = str(error)
        _publish(result, pipeline, report)
        raise
    finally:
        if steps and (max_concurrent_training > 1 or not pipeline.in_place):
            pipeline.remove_steps(steps, log=get_run_logger().warning)
    summary = pipeline.read(SUMMARY)
    result["best"] = json.loads(summary).get("best") if summary else None
    result["artifact"] = _publish(result, pipeline, report)
    get_run_logger().info(f"promotion: {result['promotion']['decision']}")
    return result


def _train_all(pipeline: Pipeline, archs: list[str], jobs: int, timeout_s: float) -> dict[str, str]:
    """Each architecture's training: one task after the other, or (jobs > 1) the first alone and the others in DVC's
    queue; raises once all of them ran if any failed."""
    alone = archs if jobs <= 1 else archs[:1]
    why_not: dict[str, str | None] = {}
    for arch in alone:
        try:
            train_stage(pipeline, arch, timeout_s)
            why_not[arch] = None
        except StageFailed as error:
            why_not[arch] = str(error)
    if archs[len(alone):]:
        why_not.update(train_in_queue(pipeline, archs[len(alone):], jobs, timeout_s))
    failed = {arch: why for arch, why in why_not.items() if why}
    if failed:
        done = ", ".join(f"train@{arch}" for arch in archs if arch not in failed) or "none"
        details = "\n\n".join(f"train@{arch}: {why}" for arch, why in failed.items())
        raise StageFailed(f"training failed for {', '.join(failed)} (the others finished: {done})\n{details}")
    return {f"train@{arch}": "trained" if arch in alone else "trained in DVC's queue" for arch in archs}


def _publish(result: dict[str, Any], pipeline: Pipeline, report: str | None) -> str:
    """The report (leaderboard and promotion) as the markdown artifact `leaderboard`, and in `report` if given."""
    markdown = report_markdown(result, None if "error" in result else pipeline.read(LEADERBOARD))
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(markdown)
    return str(create_markdown_artifact(markdown=markdown, key=ARTIFACT_KEY,
                                        description="hushkit retrain: leaderboard and promotion decision"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.retrain", description=(
        "Run the retrain flow (Prefect; ephemeral unless PREFECT_API_URL points at a server) on the DVC pipeline."))
    add = parser.add_argument
    add("--repo", default=".", help="the DVC repo (default: .)")
    add("--profile", help="overlay of params.yaml: a name in profiles/ (e.g. tiny), a path, several with commas")
    add("-S", "--set-param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="params override, as dvc exp run -S takes it (repeatable)")
    add("--arch", dest="architectures", action="append", metavar="NAME", help="train this architecture (repeatable)")
    add("--no-promote", dest="promote", action="store_false", help="skip `hushkit promote`")
    add("--name", help="the experiment's name, for a run with overrides (default: retrain-<UTC time>)")
    add("-j", "--max-concurrent-training", type=int, default=1, metavar="N",
        help="architectures trained at once (default 1; more through dvc queue)")
    add("--train-timeout-minutes", type=float, default=240.0, metavar="MIN", help="per training (default 240)")
    add("--download-retries", type=int, default=3, metavar="N")
    add("--download-backoff-seconds", type=float, default=10.0, metavar="S",
        help="the download's first retry delay; it doubles each time (default 10)")
    add("--report", help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    try:
        result = retrain(**vars(args))
    except (StageFailed, ValueError, FileNotFoundError) as error:
        print(f"retrain failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
