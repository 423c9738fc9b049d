"""evaluate: score the noisy input and the trained model on the test split (PESQ, STOI, ESTOI, SI-SDR)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import track

from hushkit import tracking
from hushkit.audio import read_audio
from hushkit.checks import suites, validate
from hushkit.inference import enhance_waveform, read_run_id
from hushkit.io import read_table, write_json, write_table
from hushkit.metrics import METRICS, score_pairs
from hushkit.models import load_checkpoint
from hushkit.stages._checks import check_mixture_files
from hushkit.stages._cli import stage_main

NOISY = "noisy"


def summarize(per_file: pd.DataFrame, system: str) -> dict[str, Any]:
    """Means per system and the model's gain over the noisy input (what `dvc metrics show` lists)."""
    means = per_file.groupby("system")[list(METRICS)].mean()
    return {
        NOISY: means.loc[NOISY].round(4).to_dict(),
        system: means.loc[system].round(4).to_dict(),
        "improvement": (means.loc[system] - means.loc[NOISY]).round(4).to_dict(),
        "files": int(per_file.id.nunique()),
    }


def breakdown(per_file: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean of every metric per system and per value of `by` (SNR level, noise category), one row each."""
    return per_file.groupby(["system", by])[list(METRICS)].mean().round(4).reset_index()


def run(params: dict[str, Any], *, mix: Path, model: Path, train_run: Path, out: Path,
        mlflow_params: dict[str, Any]) -> None:
    mix, out = Path(mix), Path(out)
    test = read_table(mix / "manifest.csv").query("split == 'test'").sort_values("id")
    if params.get("max_files"):
        test = test.head(int(params["max_files"]))
    check_mixture_files(mix, test, name="evaluate input: test mixtures", report_path=out / "checks" / "input.json")
    net, meta = load_checkpoint(model)
    system = meta["model"]
    rate = int(test.sample_rate.iat[0])
    if int(meta["sample_rate"]) != rate:
        raise ValueError(f"{model}: model runs at {meta['sample_rate']} Hz but the test set is {rate} Hz")

    jobs, keys = [], []
    for row in track(list(test.itertuples()), description=f"enhance test set ({system})", transient=True):
        clean, _ = read_audio(mix / row.clean_path)
        noisy, _ = read_audio(mix / row.noisy_path)
        for name, audio in ((NOISY, noisy), (system, enhance_waveform(net, noisy))):
            jobs.append((clean, audio, rate))
            keys.append({"id": row.id, "system": name, "target_snr_db": row.target_snr_db,
                         "noise_category": row.noise_category, "speaker": row.speaker, "language": row.language})
    scores = score_pairs(jobs, workers=os.cpu_count() or 1)
    per_file = pd.DataFrame([{**key, **score} for key, score in zip(keys, scores)])
    validate(per_file.assign(path=per_file.id + ":" + per_file.system), suites.evaluation_scores(),
             name="evaluate output: per-file scores", report_path=out / "checks" / "scores.json")
    write_table(out / "per_file.csv", per_file)
    summary = summarize(per_file, system)
    write_json(out / "metrics.json", summary)
    write_table(out / "by_snr.csv", breakdown(per_file, "target_snr_db"))
    write_table(out / "by_category.csv", breakdown(per_file, "noise_category"))

    mlflow = tracking.setup(mlflow_params)
    with mlflow.start_run(run_id=read_run_id(train_run)):
        mlflow.log_metrics({f"test_{k}": v for k, v in summary[system].items()})
        mlflow.log_metrics({f"test_noisy_{k}": v for k, v in summary[NOISY].items()})
        mlflow.log_metrics({f"test_delta_{k}": v for k, v in summary["improvement"].items()})
        mlflow.log_artifact(str(out / "per_file.csv"), artifact_path="evaluation")
    gains = ", ".join(f"{k} {summary[system][k]:.3f} ({v:+.3f})" for k, v in summary["improvement"].items())
    print(f"evaluate: {summary['files']} test files; {system}: {gains} vs noisy")


def main(argv: list[str] | None = None) -> None:
    stage_main("evaluate", run, argv, sections={"mlflow_params": "mlflow"})


if __name__ == "__main__":
    main()
