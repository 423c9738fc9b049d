"""evaluate: score one trained architecture (evaluate@<arch>) on the test split beside the noisy input, whose scores
the `baseline` stage computed once on the same files: PESQ, STOI, ESTOI, SI-SDR, DNSMOS and the one-thread RTF.

    out/per_file.csv, by_snr.csv, by_category.csv, metrics.json   the scores (the same audio gives the same files)
    out/timing.json   the RTF and each file's processing seconds (not a DVC output: see hushkit.timing)

Everything is logged to the MLflow run that trained the checkpoint (hushkit.tracking.training_run_id).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hushkit import tracking
from hushkit.config import EvaluateParams
from hushkit.evaluation import aggregate, systems
from hushkit.evaluation.scoring import score_on_test_split, test_split
from hushkit.io import read_table, write_json, write_table
from hushkit.metrics import METRICS
from hushkit.models import load_checkpoint
from hushkit.stages._cli import stage_main
from hushkit.timing import split_timing, write_timing


# Breakdowns of the per-file scores every evaluation writes: file name → the columns grouped by.
BREAKDOWNS = {"by_snr": ["target_snr_db"], "by_category": ["noise_category"], "by_condition": ["condition"]}
CURVES = {"snr": "target_snr_db", "condition": "condition"}  # curves/<name>.csv: dvc.yaml's plots


def run(section: dict[str, Any], *, arch: str, mix: Path, model: Path, noisy_scores: Path, out: Path,
        mlflow_params: dict[str, Any]) -> None:
    """`section`: params.yaml's `evaluate`; `mlflow_params`: its `mlflow` (where the training run is)."""
    mix, out = Path(mix), Path(out)
    params = EvaluateParams.parse(section, "evaluate")
    _, meta = load_checkpoint(model)
    if meta["model"] != arch:
        raise ValueError(f"{model}: checkpoint holds {meta['model']!r}, not {arch!r}")
    noisy = read_table(noisy_scores)
    if sorted(noisy.id) != sorted(test_split(mix, params.max_files).id):
        raise ValueError(f"{noisy_scores}: scores files other than this test split; rerun the baseline stage")
    per_file, timing = split_timing(score_on_test_split(arch, systems.model(model), params, mix, out))
    both = pd.concat([noisy, per_file], ignore_index=True)
    write_table(out / "per_file.csv", both)
    summary = aggregate.system_metrics(both, arch, params.condition_weights)
    write_json(out / "metrics.json", summary)
    for name, keys in BREAKDOWNS.items():
        write_table(out / f"{name}.csv", aggregate.aggregate(both, keys))
    # the model's means per level and per condition, one column per metric: what dvc plots draws and diffs
    model_rows = both[both.system == arch]
    for name, key in CURVES.items():
        write_table(out / "curves" / f"{name}.csv", model_rows.groupby(key)[list(METRICS)].mean().reset_index())
    write_timing(out, timing)

    mlflow = tracking.setup(mlflow_params)
    run_id = tracking.training_run_id(mlflow, mlflow_params, model, architecture=arch,
                                      train_params=meta.get("train_params") or {}, stage="evaluate")
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"test_{k}": v for k, v in summary["weighted"].items()} | {"test_rtf": timing["rtf"]})
        mlflow.log_metrics({f"test_delta_{k}": v for k, v in summary["weighted_improvement"].items()})
        mlflow.log_metrics({f"test_{condition}_{k}": v for condition, scores in summary.get("by_condition", {}).items()
                            for k, v in scores.items()})
        for name in ("per_file.csv", *(f"{b}.csv" for b in BREAKDOWNS), "timing.json"):
            mlflow.log_artifact(str(out / name), artifact_path="evaluation")
    gains = ", ".join(f"{k} {summary['weighted'][k]:.3f} ({v:+.3f})"
                      for k, v in summary["weighted_improvement"].items())
    print(f"evaluate: {summary['files']} test files; {arch} (mean over conditions): {gains} vs noisy; "
          f"RTF {timing['rtf']:.4f}")


def main(argv: list[str] | None = None) -> None:
    stage_main("evaluate", run, argv, sections={"mlflow_params": "mlflow"})


if __name__ == "__main__":
    main()
