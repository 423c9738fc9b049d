"""summary: compare every trained architecture and every baseline on the test split (leaderboard with 95% intervals,
breakdowns, plots, the listening report, with the taggers' section when tag-summary wrote one and the breakdown by
the noise category the best tagger predicts when tag-predict wrote it), name the best architecture, make it the
registry's `challenger`, and log the comparison and the report to the pipeline's parent MLflow run.

    out/leaderboard.{md,json}, per_file.csv, by_snr.csv, by_category.csv, *.png, report.html, summary.json
        the scores: the same results give the same files
    out/by_predicted_category.{csv,png}
        with tag-predict's predictions: the scores per predicted noise category (per_file.csv gains the column)
    out/timing.md, timing.json
        each system's real-time factor and each model's training time, from the stages' timing files (not DVC
        outputs: see hushkit.timing; blank for a stage DVC restored instead of running)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hushkit import tracking
from hushkit.baselines import NOISY
from hushkit.config import EvaluateParams, SummaryParams, validate_params
from hushkit.evaluation import aggregate
from hushkit.evaluation.report import ReportPart
from hushkit.evaluation.results import write_evaluation
from hushkit.evaluation.scoring import test_split
from hushkit.io import atomic_path, read_table, write_json
from hushkit.metrics import METRICS
from hushkit.registry import REGISTERED_MODEL, challenge_with_checkpoint
from hushkit.stages._cli import stage_main
from hushkit.tagging.summary import report_part
from hushkit.timing import read_timing, write_timing

MODEL_COLUMNS = ("n_params", "gmacs_per_second")


def collect(evaluate: Path, baseline: Path, architectures: list[str], baselines: list[str]
            ) -> tuple[pd.DataFrame, dict[str, str], dict[str, Path]]:
    """Every system's per-file scores (noisy, baselines, models), their kinds in display order, and the folders
    with their enhanced examples."""
    kinds = {NOISY: "input", **{b: "baseline" for b in baselines if b != NOISY}, **{a: "model" for a in architectures}}
    tables, folders = [], {}
    for system, kind in kinds.items():
        folder = (evaluate if kind == "model" else baseline) / system
        scores = read_table(folder / "per_file.csv")
        tables.append(scores[scores.system == system])
        if kind != "input":
            folders[system] = folder / "examples"
    per_file = pd.concat(tables, ignore_index=True)
    counts = per_file.groupby("system").id.nunique()
    if counts.nunique() != 1:
        raise ValueError(f"systems were scored on different test files ({counts.to_dict()}); rerun `dvc repro`")
    return per_file, kinds, folders


def model_details(train: Path, architectures: list[str]) -> pd.DataFrame:
    rows = []
    for arch in architectures:
        trained = json.loads((train / arch / "metrics.json").read_text())
        rows.append({"system": arch, "n_params": trained["n_params"],
                     "gmacs_per_second": trained.get("gmacs_per_second")})
    return pd.DataFrame(rows, columns=["system", *MODEL_COLUMNS])


def timing_table(evaluate: Path, baseline: Path, train: Path, kinds: dict[str, str]) -> pd.DataFrame:
    """Per system: the one-thread RTF and, for a model, its training seconds, from the stages' timing files (NaN
    where the stage did not run in this workspace)."""
    rows = []
    for system, kind in kinds.items():
        scored = read_timing((evaluate if kind == "model" else baseline) / system) or {}
        trained = (read_timing(train / system) or {}) if kind == "model" else {}
        rows.append({"system": system, "kind": kind, "rtf": scored.get("rtf"),
                     "train_seconds": trained.get("train_seconds")})
    return pd.DataFrame(rows, columns=["system", "kind", "rtf", "train_seconds"]).astype(
        {"rtf": float, "train_seconds": float})


def write_timing_table(out: Path, timing: pd.DataFrame) -> None:
    lines = ["# hushkit timings (this workspace's last run of each stage)", "",
             "rtf: processing time over audio time on one CPU thread; train_seconds: wall-clock training time. "
             "Measured anew on every run, so kept out of the leaderboard; blank: the stage was restored by DVC, "
             "not run here (MLflow has its figures).", "",
             "| system | kind | rtf | train_seconds |", "|---|---|---|---|"]
    for row in timing.itertuples():
        rtf = "" if pd.isna(row.rtf) else f"{row.rtf:.4f}"
        seconds = "" if pd.isna(row.train_seconds) else f"{row.train_seconds:.0f}"
        lines.append(f"| {row.system} | {row.kind} | {rtf} | {seconds} |")
    with atomic_path(out / "timing.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_timing(out, {row.system: {"kind": row.kind, "rtf": None if pd.isna(row.rtf) else row.rtf,
                                    "train_seconds": None if pd.isna(row.train_seconds) else row.train_seconds}
                       for row in timing.itertuples()})


def best_architecture(scores: pd.DataFrame, kinds: dict[str, str], rank_by: str) -> str:
    """The model with the best `rank_by` score (`scores`: system × metric, the condition-weighted means; SI-SDR
    breaks a tie)."""
    if rank_by not in METRICS:
        raise ValueError(f"summary.rank_by: {rank_by!r} is not a metric; choose one of {list(METRICS)}")
    models = scores.loc[[system for system, kind in kinds.items() if kind == "model"]]
    return str(models.sort_values([rank_by, "si_sdr"], ascending=False).index[0])


def tagging_parts(tagging: Path | None) -> list[ReportPart]:
    """The report's Tagging section, from the tag-summary stage's folder; none without taggers (no folder given,
    or none written: a pipeline without the `tagging` section)."""
    part = None if tagging is None else report_part(Path(tagging))
    return [] if part is None else [part]


def predictions(path: Path | None) -> tuple[pd.DataFrame | None, str]:
    """(tag-predict's predicted category of each test mixture, the tagger that predicted them); (None, "") without
    taggers (no file given, or none written: a pipeline without the `tagging` section)."""
    if path is None or not Path(path).is_file():
        return None, ""
    table = read_table(path)
    missing = sorted({"id", "predicted_category", "tagger"} - set(table.columns))
    if missing:
        raise ValueError(f"{path}: lacks the columns {missing}; rerun tag-predict")
    taggers = sorted(set(table.tagger.astype(str)))
    return table, ", ".join(taggers)


def run(section: dict[str, Any], *, evaluate: Path, train: Path, baseline: Path, mix: Path, out: Path,
        pipeline_params: dict[str, Any], tagging: Path | None = None, predicted: Path | None = None) -> None:
    """`section`: params.yaml's `summary`; `pipeline_params`: the whole file (architectures, evaluate, mlflow);
    `tagging`: the tag-summary stage's folder, whose taggers get a section of the report when it holds them;
    `predicted`: tag-predict's test.csv, which breaks the scores down by predicted noise category when written."""
    evaluate, train, baseline, out = map(Path, (evaluate, train, baseline, out))
    rank_by = SummaryParams.parse(section, "summary").rank_by
    pipeline = validate_params(pipeline_params)
    architectures = pipeline.train.architectures
    evaluate_params = pipeline.evaluate or EvaluateParams()
    per_file, kinds, folders = collect(evaluate, baseline, architectures, evaluate_params.baselines or [NOISY])
    test = test_split(Path(mix), evaluate_params.max_files)
    board = aggregate.leaderboard(per_file, kinds)
    weights = evaluate_params.condition_weights
    scores = aggregate.weighted_means(per_file, weights)
    best = best_architecture(scores, kinds, rank_by)
    basis = (f"the mean over the test conditions ({', '.join(f'{c} x{w:g}' for c, w in weights.items())})"
             if weights else "the mean over the test files")
    intro = (f"{per_file.id.nunique()} test files, every system scored on exactly the same audio. "
             f"Best trained architecture by {rank_by} ({basis}): {best}, {scores.loc[best, rank_by]:.3f}.")
    categories, predicted_by = predictions(predicted)
    board = write_evaluation(out, per_file, kinds, mix=Path(mix), test=test, examples=folders,
                             title="hushkit leaderboard (test split)", intro=intro, board=board,
                             extra=model_details(train, architectures), parts=tagging_parts(tagging),
                             predicted=categories, predicted_by=predicted_by)
    write_json(out / "summary.json", {
        "best": best, "rank_by": rank_by,
        "rank_scores": {system: round(float(scores.loc[system, rank_by]), 4) for system in kinds},
        "systems": {row["system"]: {m: round(float(row[m]), 4) for m in (*METRICS, "dnsmos_ovr")
                                    if pd.notna(row[m])} for row in board.to_dict("records")},
    })
    timing = timing_table(evaluate, baseline, train, kinds)
    write_timing_table(out, timing)

    mlflow_params = pipeline_params.get("mlflow", {})
    mlflow = tracking.setup(mlflow_params)
    from mlflow import MlflowClient

    client = MlflowClient()
    name = mlflow_params.get("registered_model") or REGISTERED_MODEL
    registry = challenge_with_checkpoint(client, name, train / best / "model.pt", f"export@{best}")
    measured = dict(zip(timing.system, timing.rtf))
    with mlflow.start_run(run_id=tracking.parent_run_id(mlflow, pipeline_params)):
        mlflow.set_tag("best_architecture", best)
        for row in board.to_dict("records"):
            mlflow.log_metrics({f"{row['system']}.{m}": float(row[m]) for m in (*METRICS, "dnsmos_ovr")
                                if pd.notna(row[m])})
            if pd.notna(measured.get(row["system"])):
                mlflow.log_metric(f"{row['system']}.rtf", float(measured[row["system"]]))
        mlflow.log_artifacts(str(out), artifact_path="summary")  # the report, leaderboard, plots, tables, timings
    print((out / "leaderboard.md").read_text())
    print((out / "timing.md").read_text())
    print(f"summary: best by {rank_by} is {best}; {registry}; report: {out / 'report.html'}")


def main(argv: list[str] | None = None) -> None:
    stage_main("summary", run, argv, sections={"pipeline_params": "*"})


if __name__ == "__main__":
    main()
