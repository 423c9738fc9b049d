"""evaluate: score one trained architecture (evaluate@<arch>) on the test split (PESQ, STOI, ESTOI, SI-SDR) beside
the noisy input, whose scores the `baseline` stage computed once on the same files."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from rich.progress import track

from hushkit import tracking
from hushkit.audio import read_audio
from hushkit.baselines import NOISY
from hushkit.checks import suites, validate
from hushkit.inference import enhance_waveform, read_run_id
from hushkit.io import read_table, write_json, write_table
from hushkit.metrics import METRICS, score_pairs
from hushkit.models import load_checkpoint
from hushkit.stages._checks import check_mixture_files
from hushkit.stages._cli import stage_main

KEYS = ("id", "target_snr_db", "noise_category", "speaker", "language")


def test_split(mix: Path, params: dict[str, Any]) -> pd.DataFrame:
    """The test mixtures in a fixed order (the first `evaluate.max_files` if set): every system sees the same."""
    test = read_table(Path(mix) / "manifest.csv").query("split == 'test'").sort_values("id")
    return test.head(int(params["max_files"])) if params.get("max_files") else test


def score_system(system: str, enhance: Callable[[np.ndarray], np.ndarray], mix: Path, test: pd.DataFrame,
                 checks: Path, workers: int = 1) -> pd.DataFrame:
    """Per-file scores of `enhance` (noisy audio → enhanced audio) against the clean references, one row per file.
    `workers` > 1 enhances files in that many processes (`enhance` must then pickle): for single-threaded systems;
    a torch model already uses every core."""
    check_mixture_files(mix, test, name="evaluate input: test mixtures", report_path=checks / "input.json")
    rate = int(test.sample_rate.iat[0])
    noisy_paths = [mix / path for path in test.noisy_path]
    description = f"enhance test set ({system})"
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            outputs = list(track(pool.map(_enhance_file, [enhance] * len(noisy_paths), noisy_paths, chunksize=4),
                                 total=len(noisy_paths), description=description, transient=True))
    else:
        outputs = [_enhance_file(enhance, path) for path in track(noisy_paths, description=description,
                                                                   transient=True)]
    jobs = [(read_audio(mix / clean)[0], enhanced, rate) for clean, enhanced in zip(test.clean_path, outputs)]
    scores = score_pairs(jobs, workers=os.cpu_count() or 1)
    per_file = pd.concat([test[list(KEYS)].reset_index(drop=True).assign(system=system), pd.DataFrame(scores)],
                         axis=1)
    validate(per_file.assign(path=per_file.id + ":" + per_file.system), suites.evaluation_scores(),
             name=f"evaluate output: per-file scores of {system}", report_path=checks / "scores.json")
    return per_file


def _enhance_file(enhance: Callable[[np.ndarray], np.ndarray], path: Path) -> np.ndarray:
    return enhance(read_audio(path)[0])


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


def write_results(out: Path, per_file: pd.DataFrame, system: str) -> dict[str, Any]:
    """per_file.csv, metrics.json (means and gain over the noisy input), by_snr.csv, by_category.csv."""
    write_table(out / "per_file.csv", per_file)
    summary = summarize(per_file, system)
    write_json(out / "metrics.json", summary)
    write_table(out / "by_snr.csv", breakdown(per_file, "target_snr_db"))
    write_table(out / "by_category.csv", breakdown(per_file, "noise_category"))
    return summary


def run(params: dict[str, Any], *, arch: str, mix: Path, model: Path, noisy_scores: Path, train_run: Path, out: Path,
        mlflow_params: dict[str, Any]) -> None:
    mix, out = Path(mix), Path(out)
    test = test_split(mix, params)
    net, meta = load_checkpoint(model)
    if meta["model"] != arch:
        raise ValueError(f"{model}: checkpoint holds {meta['model']!r}, not {arch!r}")
    if int(meta["sample_rate"]) != int(test.sample_rate.iat[0]):
        raise ValueError(f"{model}: model runs at {meta['sample_rate']} Hz but the test set is "
                         f"{test.sample_rate.iat[0]} Hz")
    noisy = read_table(noisy_scores)
    if sorted(noisy.id) != sorted(test.id):
        raise ValueError(f"{noisy_scores}: scores files other than this test split; rerun the baseline stage")
    per_file = score_system(arch, lambda audio: enhance_waveform(net, audio), mix, test, out / "checks")
    summary = write_results(out, pd.concat([noisy, per_file], ignore_index=True), arch)

    mlflow = tracking.setup(mlflow_params)
    with mlflow.start_run(run_id=read_run_id(train_run)):
        mlflow.log_metrics({f"test_{k}": v for k, v in summary[arch].items()})
        mlflow.log_metrics({f"test_noisy_{k}": v for k, v in summary[NOISY].items()})
        mlflow.log_metrics({f"test_delta_{k}": v for k, v in summary["improvement"].items()})
        mlflow.log_artifact(str(out / "per_file.csv"), artifact_path="evaluation")
    gains = ", ".join(f"{k} {summary[arch][k]:.3f} ({v:+.3f})" for k, v in summary["improvement"].items())
    print(f"evaluate: {summary['files']} test files; {arch}: {gains} vs noisy")


def main(argv: list[str] | None = None) -> None:
    stage_main("evaluate", run, argv, sections={"mlflow_params": "mlflow"})


if __name__ == "__main__":
    main()
