"""summary: compare every trained architecture and every baseline on the test split, name the best architecture,
make it the registry's `challenger`, and log the comparison to the pipeline's parent MLflow run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hushkit import tracking
from hushkit.io import atomic_path, write_json
from hushkit.metrics import METRICS
from hushkit.stages._cli import stage_main
from hushkit.baselines import NOISY

ALIAS = "challenger"


def leaderboard(evaluate: Path, train: Path, export: Path, architectures: list[str],
                baseline: Path | None = None, baselines: list[str] = ()) -> pd.DataFrame:
    """One row per system: the noisy input, each baseline (scored by baseline@<name> under `baseline`), each
    architecture; test means, gains over noisy, and for architectures size, cost and registry version."""
    rows = []
    for arch in architectures:
        scores = json.loads((evaluate / arch / "metrics.json").read_text())
        trained = json.loads((train / arch / "metrics.json").read_text())
        exported = json.loads((export / arch / "export.json").read_text())
        if not rows:
            rows.append({"system": NOISY, "kind": "input", **scores[NOISY]})
            for name in (b for b in baselines if b != NOISY):
                means = json.loads((baseline / name / "metrics.json").read_text())[name]
                rows.append({"system": name, "kind": "baseline", **means,
                             **{f"delta_{k}": means[k] - scores[NOISY][k] for k in METRICS}})
        rows.append({"system": arch, "kind": "model", **scores[arch],
                     **{f"delta_{k}": v for k, v in scores["improvement"].items()},
                     "n_params": trained["n_params"], "gmacs_per_second": trained.get("gmacs_per_second"),
                     "train_seconds": trained["train_seconds"], "registry_version": exported["registry"]["version"]})
    return pd.DataFrame(rows)


def best_architecture(board: pd.DataFrame, rank_by: str) -> str:
    if rank_by not in METRICS:
        raise ValueError(f"summary.rank_by: {rank_by!r} is not a metric; choose one of {list(METRICS)}")
    models = board[board.kind == "model"]
    return str(models.sort_values([rank_by, "si_sdr"], ascending=False).system.iat[0])


def _cell(value) -> str:
    """Blank when missing, whole numbers (parameter counts) without decimals, scores to 3 decimals."""
    if pd.isna(value):
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.3f}"
    return str(value)


def to_markdown(board: pd.DataFrame, best: str, rank_by: str) -> str:
    columns = ["system", "kind", *METRICS, *[f"delta_{m}" for m in METRICS], "n_params", "gmacs_per_second",
               "train_seconds"]
    table = board[columns].copy()
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    lines = []
    for row in table.itertuples(index=False):
        cells = [_cell(v) for v in row]
        if row.system == best:
            cells[0] = f"**{row.system}**"
        lines.append("| " + " | ".join(cells) + " |")
    return (f"# hushkit leaderboard (test split)\n\nBest by {rank_by}: **{best}**. Deltas are gains over the noisy "
            f"input on the same files.\n\n" + header + "\n".join(lines) + "\n")


def plot(board: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.5 * len(METRICS), 4))
    # Grey: the noisy input; orange: reference systems; blue: trained architectures.
    colors = [{"input": "#999999", "baseline": "#d08030"}.get(kind, "#3070b0") for kind in board.kind]
    for ax, metric in zip(axes, METRICS):
        ax.bar(range(len(board)), board[metric], color=colors)
        ax.set_xticks(range(len(board)), board.system, rotation=45, ha="right")
        ax.set_title(metric)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def promote(mlflow_params: dict[str, Any], version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(mlflow_params.get("registered_model", "hushkit-denoiser"), ALIAS,
                                              str(version))


def run(params: dict[str, Any], *, evaluate: Path, train: Path, export: Path, baseline: Path, out: Path,
        pipeline_params: dict[str, Any]) -> None:
    evaluate, train, export, out = Path(evaluate), Path(train), Path(export), Path(out)
    architectures = pipeline_params["train"]["architectures"]
    rank_by = params.get("rank_by", "pesq")
    baselines = pipeline_params.get("evaluate", {}).get("baselines") or [NOISY]
    board = leaderboard(evaluate, train, export, architectures, Path(baseline), baselines)
    best = best_architecture(board, rank_by)
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(board, best, rank_by)
    with atomic_path(out / "leaderboard.md") as tmp:
        tmp.write_text(markdown)
    plot(board, out / "leaderboard.png")
    best_row = board.set_index("system").loc[best]
    write_json(out / "summary.json", {
        "best": best, "rank_by": rank_by, "best_registry_version": str(best_row.registry_version),
        "systems": {row.system: {m: round(float(getattr(row, m)), 4) for m in METRICS}
                    for row in board.itertuples()},
    })

    mlflow_params = pipeline_params.get("mlflow", {})
    mlflow = tracking.setup(mlflow_params)
    promote(mlflow_params, best_row.registry_version)
    parent = tracking.parent_run_id(mlflow, pipeline_params)
    with mlflow.start_run(run_id=parent):
        mlflow.set_tag("best_architecture", best)
        for row in board.itertuples():
            mlflow.log_metrics({f"{row.system}.{m}": float(getattr(row, m)) for m in METRICS})
        mlflow.log_artifacts(str(out), artifact_path="summary")
    print(markdown)
    print(f"summary: best by {rank_by} is {best}; registry version {best_row.registry_version} is @{ALIAS}")


def main(argv: list[str] | None = None) -> None:
    stage_main("summary", run, argv, sections={"pipeline_params": "*"})


if __name__ == "__main__":
    main()
