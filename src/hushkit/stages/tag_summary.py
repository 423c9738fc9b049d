"""tag-summary: every tagger of tagging.architectures side by side, from its tag-evaluate outputs (metrics.json,
per_class.csv, per_clip.csv): names the best by lwlrap (a tie: lwlrap on the noisy clips), makes its registered
version (tag-export's, found by the checkpoint's sha256) the `challenger` of the registered tagger model, and logs
the comparison to the pipeline's parent MLflow run. The summary stage puts these files in the report's Tagging
section.

    out/summary.json     the best tagger; per tagger lwlrap (all clips, curated, noisy) and mAP, each with its 95 %
                         interval, and its size; the chance levels
    out/leaderboard.md   the same as a table
    out/per_class.png    per-class lwlrap with 95 % intervals, a bar per tagger in each class's group
    out/confusion.png    the best tagger's confusions (hushkit.tagging.metrics.label_confusion)

The same results give the same files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hushkit import tracking
from hushkit.config import TaggingParams
from hushkit.io import read_table, write_json
from hushkit.registry import REGISTERED_TAGGER, challenge_with_checkpoint
from hushkit.stages._cli import stage_main
from hushkit.tagging.labels import LabelSet
from hushkit.tagging.metrics import label_confusion
from hushkit.tagging.plots import confusion_heatmap, per_class_bars
from hushkit.tagging.summary import SCORES, best_tagger, read_scores, summary_record, write_leaderboard


def read_per_class(evaluate: Path, architectures: list[str]) -> dict[str, Any]:
    """Each tagger's per_class.csv; all must name the same labels in the same order."""
    tables = {arch: read_table(evaluate / arch / "per_class.csv") for arch in architectures}
    labels = {arch: list(table.label) for arch, table in tables.items()}
    if len({tuple(names) for names in labels.values()}) > 1:
        raise ValueError(f"{evaluate}: the taggers' per_class.csv name different labels ({labels}); rerun `dvc repro`")
    return tables


def confusions(per_clip_path: Path, labels: list[str]) -> np.ndarray:
    """label_confusion of a tagger's per_clip.csv (each clip's labels and its score for every label)."""
    per_clip = read_table(per_clip_path)
    missing = [name for name in ["labels", *labels] if name not in per_clip.columns]
    if missing:
        raise ValueError(f"{per_clip_path}: lacks the columns {missing}; rerun tag-evaluate")
    truth = LabelSet(tuple(labels)).targets(per_clip["labels"].fillna("").astype(str))
    return label_confusion(truth, per_clip[labels].to_numpy(dtype=float))


def run(section: dict[str, Any], *, evaluate: Path, train: Path, out: Path, pipeline_params: dict[str, Any]) -> None:
    """`section`: params.yaml's `tagging`; `pipeline_params`: the whole file (the parent run's sections, mlflow)."""
    evaluate, train, out = Path(evaluate), Path(train), Path(out)
    tagging = TaggingParams.parse(section, "tagging")
    architectures = list(dict.fromkeys(tagging.architectures))
    scores = read_scores(evaluate, architectures)
    per_class = read_per_class(evaluate, architectures)
    best = best_tagger(scores)
    labels = list(per_class[best].label)
    matrix = confusions(evaluate / best / "per_clip.csv", labels)
    n_params = {arch: json.loads((train / arch / "metrics.json").read_text()).get("n_params")
                for arch in architectures}
    record = summary_record(scores, best, n_params)
    write_json(out / "summary.json", record)
    write_leaderboard(out / "leaderboard.md", record)
    per_class_bars(per_class, out / "per_class.png")
    confusion_heatmap(matrix, labels, out / "confusion.png",
                      title=f"{best}: mean probability of each label, per true label (test clips)")

    from mlflow import MlflowClient

    mlflow_params = pipeline_params.get("mlflow") or {}
    mlflow = tracking.setup(mlflow_params)
    client = MlflowClient()
    name = tagging.registered_model or REGISTERED_TAGGER
    registry = challenge_with_checkpoint(client, name, train / best / "model.pt", f"tag-export@{best}")
    with mlflow.start_run(run_id=tracking.parent_run_id(mlflow, pipeline_params)):
        mlflow.set_tag("best_tagger", best)
        mlflow.log_metrics({f"{arch}.{score}": value["mean"] for arch, entry in record["taggers"].items()
                            for score, value in entry.items() if score in SCORES and value["mean"] is not None})
        mlflow.log_artifacts(str(out), artifact_path="tagging_summary")
    print((out / "leaderboard.md").read_text())
    print(f"tag-summary: best by lwlrap is {best}; {registry}")


def main(argv: list[str] | None = None) -> None:
    stage_main("tag_summary", run, argv, section="tagging", sections={"pipeline_params": "*"})


if __name__ == "__main__":
    main()
