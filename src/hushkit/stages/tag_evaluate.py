"""tag-evaluate: score one trained tagger (tag-evaluate@<arch>) on the test clips: lwlrap overall, on the curated
and on the noisy clips, each beside its chance level (the expected lwlrap of a random ranking of the same clips);
mAP; and per-class lwlrap, overall and per subset. Every overall score has a 95 % bootstrap interval over the clips
(tagging.evaluate: `<score>_low`, `<score>_high`), and so has each class's lwlrap.

    out/metrics.json     the figures (`dvc metrics show` lists every tagger)
    out/per_class.csv    per-class lwlrap [interval], positives and weight; per-class lwlrap on each subset; AP
    out/per_clip.csv     every test clip's subset, labels and score for each label

Everything is logged to the MLflow run that trained the checkpoint (hushkit.tracking.training_run_id).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hushkit import tracking
from hushkit.checks import suites, validate
from hushkit.config import TaggingParams
from hushkit.io import read_table, write_json, write_table
from hushkit.stages._cli import stage_main
from hushkit.tagging.data import TaggingSplit, clip_scores, load_tagger_for_clips
from hushkit.tagging.metrics import (
    average_precision, bootstrap_interval, chance_lwlrap, mean_average_precision, per_class_lwlrap,
)

SUBSETS = ("curated", "noisy")


def score(test: TaggingSplit, scores: np.ndarray, labels: list[str], resamples: int, seed: int
          ) -> tuple[dict[str, float], pd.DataFrame, list[str]]:
    """(metrics, the per-class table, notes) of `scores` on the test clips."""
    report = per_class_lwlrap(test.targets, scores, labels, resamples=resamples, seed=seed)
    map_low, map_high = bootstrap_interval(mean_average_precision, test.targets, scores, resamples=resamples,
                                           seed=seed)
    metrics = {"lwlrap": report.overall, "lwlrap_low": report.low, "lwlrap_high": report.high,
               "chance_lwlrap": chance_lwlrap(test.targets), "mAP": mean_average_precision(test.targets, scores),
               "mAP_low": map_low, "mAP_high": map_high, "clips": len(test)}
    table = report.classes.copy()
    table["ap"] = average_precision(test.targets, scores)
    for subset in SUBSETS:
        keep = test.subsets == subset
        if not keep.any():
            continue
        part = per_class_lwlrap(test.targets[keep], scores[keep], labels, resamples=resamples, seed=seed)
        metrics[f"lwlrap_{subset}"] = part.overall
        metrics[f"lwlrap_{subset}_low"], metrics[f"lwlrap_{subset}_high"] = part.low, part.high
        metrics[f"chance_lwlrap_{subset}"] = chance_lwlrap(test.targets[keep])
        metrics[f"clips_{subset}"] = int(keep.sum())
        table[f"lwlrap_{subset}"] = part.classes.lwlrap.to_numpy()
    return metrics, table, report.notes


def run(section: dict[str, Any], *, arch: str, features: Path, model: Path, out: Path,
        mlflow_params: dict[str, Any]) -> None:
    """`section`: params.yaml's `tagging` (this stage reads `tagging.evaluate`); `mlflow_params`: its `mlflow`."""
    features, out = Path(features), Path(out)
    params = TaggingParams.parse(section, "tagging").evaluate
    tagger, meta, labels = load_tagger_for_clips(model, arch, features)
    test = TaggingSplit.load(features / "test")
    scores = clip_scores(tagger, test.waveforms)
    clips = read_table(features / "test" / "clips.csv")
    per_clip = pd.concat([clips[["id", "subset", "labels"]], pd.DataFrame(scores, columns=labels)], axis=1)
    validate(per_clip, suites.tagging_scores(labels), name="tag-evaluate output: clip scores",
             report_path=out / "checks" / "scores.json", id_column="id")
    metrics, table, notes = score(test, scores, labels, params.resamples, params.seed)
    metrics = {key: (round(float(value), 6) if isinstance(value, float) else value) for key, value in metrics.items()}
    write_json(out / "metrics.json", metrics)
    write_table(out / "per_class.csv", table)
    write_table(out / "per_clip.csv", per_clip)

    mlflow = tracking.setup(mlflow_params)
    run_id = tracking.training_run_id(mlflow, mlflow_params, model, architecture=arch,
                                      train_params=meta.get("train_params") or {}, stage="tag-evaluate")
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"test_{key}": value for key, value in metrics.items() if np.isfinite(value)})
        for name in ("per_class.csv", "per_clip.csv"):
            mlflow.log_artifact(str(out / name), artifact_path="evaluation")
    for note in notes:
        print(f"tag-evaluate: note: {note}")
    subsets = "".join(f", {subset} {metrics[f'lwlrap_{subset}']:.3f} [{metrics[f'lwlrap_{subset}_low']:.3f}, "
                      f"{metrics[f'lwlrap_{subset}_high']:.3f}] (chance {metrics[f'chance_lwlrap_{subset}']:.3f})"
                      for subset in SUBSETS if f"lwlrap_{subset}" in metrics)
    print(f"tag-evaluate: {arch} on {len(test)} test clips: lwlrap {metrics['lwlrap']:.3f} "
          f"[{metrics['lwlrap_low']:.3f}, {metrics['lwlrap_high']:.3f}] (chance {metrics['chance_lwlrap']:.3f})"
          f"{subsets}; mAP {metrics['mAP']:.3f}")


def main(argv: list[str] | None = None) -> None:
    stage_main("tag_evaluate", run, argv, section="tagging", sections={"mlflow_params": "mlflow"})


if __name__ == "__main__":
    main()
