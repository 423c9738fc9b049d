"""summary: compare every trained architecture and every baseline on the test split (leaderboard with 95% intervals,
breakdowns, plots, the listening report), name the best architecture, make it the registry's `challenger`, and log
the comparison and the report to the pipeline's parent MLflow run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hushkit import tracking
from hushkit.baselines import NOISY
from hushkit.evaluation import aggregate
from hushkit.evaluation.results import write_evaluation
from hushkit.io import read_table, write_json
from hushkit.metrics import METRICS
from hushkit.stages._cli import stage_main
from hushkit.stages.evaluate import test_split

ALIAS = "challenger"
MODEL_COLUMNS = ("n_params", "gmacs_per_second", "train_seconds", "registry_version")


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


def model_details(train: Path, export: Path, architectures: list[str]) -> pd.DataFrame:
    rows = []
    for arch in architectures:
        trained = json.loads((train / arch / "metrics.json").read_text())
        exported = json.loads((export / arch / "export.json").read_text())
        rows.append({"system": arch, "n_params": trained["n_params"],
                     "gmacs_per_second": trained.get("gmacs_per_second"), "train_seconds": trained["train_seconds"],
                     "registry_version": str(exported["registry"]["version"])})
    return pd.DataFrame(rows, columns=["system", *MODEL_COLUMNS])


def best_architecture(scores: pd.DataFrame, kinds: dict[str, str], rank_by: str) -> str:
    """The model with the best `rank_by` score (`scores`: system × metric, the condition-weighted means; SI-SDR
    breaks a tie)."""
    if rank_by not in METRICS:
        raise ValueError(f"summary.rank_by: {rank_by!r} is not a metric; choose one of {list(METRICS)}")
    models = scores.loc[[system for system, kind in kinds.items() if kind == "model"]]
    return str(models.sort_values([rank_by, "si_sdr"], ascending=False).index[0])


def promote(mlflow_params: dict[str, Any], version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(mlflow_params.get("registered_model", "hushkit-denoiser"), ALIAS,
                                              str(version))


def run(params: dict[str, Any], *, evaluate: Path, train: Path, export: Path, baseline: Path, mix: Path, out: Path,
        pipeline_params: dict[str, Any]) -> None:
    evaluate, train, export, baseline, out = map(Path, (evaluate, train, export, baseline, out))
    architectures = pipeline_params["train"]["architectures"]
    rank_by = params.get("rank_by", "pesq")
    evaluate_params = pipeline_params.get("evaluate", {})
    per_file, kinds, folders = collect(evaluate, baseline, architectures, evaluate_params.get("baselines") or [NOISY])
    test = test_split(Path(mix), evaluate_params)
    board = aggregate.leaderboard(per_file, kinds)
    weights = evaluate_params.get("condition_weights")
    scores = aggregate.weighted_means(per_file, weights)
    best = best_architecture(scores, kinds, rank_by)
    basis = (f"the mean over the test conditions ({', '.join(f'{c} x{w:g}' for c, w in weights.items())})"
             if weights else "the mean over the test files")
    intro = (f"{per_file.id.nunique()} test files, every system scored on exactly the same audio. "
             f"Best trained architecture by {rank_by} ({basis}): {best}, {scores.loc[best, rank_by]:.3f}.")
    board = write_evaluation(out, per_file, kinds, mix=Path(mix), test=test, examples=folders,
                             title="hushkit leaderboard (test split)", intro=intro, board=board,
                             extra=model_details(train, export, architectures))
    best_row = board.set_index("system").loc[best]
    write_json(out / "summary.json", {
        "best": best, "rank_by": rank_by, "best_registry_version": str(best_row.registry_version),
        "rank_scores": {system: round(float(scores.loc[system, rank_by]), 4) for system in kinds},
        "systems": {row["system"]: {m: round(float(row[m]), 4) for m in (*METRICS, "dnsmos_ovr", "rtf")
                                    if pd.notna(row[m])} for row in board.to_dict("records")},
    })

    mlflow_params = pipeline_params.get("mlflow", {})
    mlflow = tracking.setup(mlflow_params)
    promote(mlflow_params, best_row.registry_version)
    with mlflow.start_run(run_id=tracking.parent_run_id(mlflow, pipeline_params)):
        mlflow.set_tag("best_architecture", best)
        for row in board.to_dict("records"):
            mlflow.log_metrics({f"{row['system']}.{m}": float(row[m]) for m in (*METRICS, "dnsmos_ovr", "rtf")
                                if pd.notna(row[m])})
        mlflow.log_artifacts(str(out), artifact_path="summary")  # the report, leaderboard, plots and tables
    print((out / "leaderboard.md").read_text())
    print(f"summary: best by {rank_by} is {best}; registry version {best_row.registry_version} is @{ALIAS}; "
          f"report: {out / 'report.html'}")


def main(argv: list[str] | None = None) -> None:
    stage_main("summary", run, argv, sections={"pipeline_params": "*"})


if __name__ == "__main__":
    main()
