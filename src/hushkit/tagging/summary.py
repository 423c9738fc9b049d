"""The taggers side by side: their scores from the tag-evaluate stage, the best one, the leaderboard (the
tag-summary stage writes them), and the Tagging section of the pipeline's report, built from what tag-summary wrote.

Every score is shown as "mean [low, high]", its 95 % bootstrap interval over the test clips (tag-evaluate's)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from hushkit.evaluation.report import ReportPart
from hushkit.io import atomic_path

RANK_BY, TIE_BREAK = "lwlrap", "lwlrap_noisy"
# summary.json's name of a score → tag-evaluate's (its interval is <name>_low, <name>_high there)
SCORES = {"lwlrap": "lwlrap", "curated": "lwlrap_curated", "noisy": "lwlrap_noisy", "mAP": "mAP"}
CHANCE = {"lwlrap": "chance_lwlrap", "curated": "chance_lwlrap_curated", "noisy": "chance_lwlrap_noisy"}
FIGURES = (
    ("per_class.png", "Per-class lwlrap of every tagger on the test clips (whiskers: 95% bootstrap interval)"),
    ("confusion.png", "The best tagger's confusions: for the clips of each true label (rows), the mean probability "
                      "it gives every label (columns); off the diagonal only clips where that label is absent count"),
)


def read_scores(evaluate: Path, architectures: list[str]) -> dict[str, dict[str, Any]]:
    """Each tagger's metrics.json (tag-evaluate@<arch>), in `architectures` order; the taggers must have been scored
    on the same clips (else: rerun the stale ones)."""
    scores = {}
    for arch in architectures:
        path = Path(evaluate) / arch / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file; run tag-evaluate@{arch}")
        metrics = json.loads(path.read_text())
        missing = [key for key in (RANK_BY, "chance_lwlrap", "clips") if key not in metrics]
        if missing:
            raise ValueError(f"{path}: lacks {missing}; rerun tag-evaluate@{arch}")
        scores[arch] = metrics
    test_sets = {arch: (m["clips"], m["chance_lwlrap"]) for arch, m in scores.items()}
    if len(set(test_sets.values())) > 1:
        raise ValueError(f"the taggers were scored on different test clips (clips, chance lwlrap: {test_sets}); rerun "
                         "`dvc repro`")
    return scores


def _number(value: Any) -> float:
    """A score as a float, NaN when absent or not a number."""
    return float(value) if isinstance(value, (int, float)) else math.nan


def best_tagger(scores: dict[str, dict[str, Any]]) -> str:
    """The tagger with the highest lwlrap; a tie goes to the higher lwlrap on the noisy (multi-label) clips, then to
    the one listed first. A NaN score ranks last."""
    def key(arch: str) -> tuple[float, float, int]:
        ranked = [_number(scores[arch].get(name)) for name in (RANK_BY, TIE_BREAK)]
        return (*(v if math.isfinite(v) else -math.inf for v in ranked), -list(scores).index(arch))

    return max(scores, key=key)


def _rounded(value: Any) -> float | None:
    number = _number(value)
    return round(number, 4) if math.isfinite(number) else None


def summary_record(scores: dict[str, dict[str, Any]], best: str, n_params: dict[str, int | None]) -> dict[str, Any]:
    """summary.json: the best tagger, each tagger's scores with their intervals and its size, the chance levels."""
    first = next(iter(scores.values()))
    return {
        "best": best, "rank_by": RANK_BY, "tie_break": TIE_BREAK,
        "clips": {"all": first["clips"], **{subset: first.get(f"clips_{subset}") for subset in ("curated", "noisy")}},
        "chance": {name: _rounded(first.get(key)) for name, key in CHANCE.items()},
        "taggers": {arch: {**{name: {"mean": _rounded(m.get(key)), "low": _rounded(m.get(f"{key}_low")),
                                     "high": _rounded(m.get(f"{key}_high"))} for name, key in SCORES.items()},
                           "n_params": n_params.get(arch)}
                    for arch, m in scores.items()},
    }


def _interval(score: dict[str, float | None]) -> str:
    if score["mean"] is None:
        return ""
    if score["low"] is None or score["high"] is None:
        return f"{score['mean']:.3f}"
    return f"{score['mean']:.3f} [{score['low']:.3f}, {score['high']:.3f}]"


def leaderboard(record: dict[str, Any]) -> pd.DataFrame:
    """A row per tagger, best first, then the chance row: lwlrap (all clips, curated, noisy) and mAP as text with
    intervals, and the size."""
    ranked = [record["best"], *(arch for arch in record["taggers"] if arch != record["best"])]
    rows = [{"system": arch, "kind": "model", **{name: _interval(record["taggers"][arch][name]) for name in SCORES},
             "n_params": "" if record["taggers"][arch]["n_params"] is None else
             f"{record['taggers'][arch]['n_params']:.0f}"} for arch in ranked]
    chance = record["chance"]
    rows.append({"system": "chance (random ranking)", "kind": "input",
                 **{name: "" if chance.get(name) is None else f"{chance[name]:.3f}" for name in SCORES},
                 "n_params": ""})
    return pd.DataFrame(rows, columns=["system", "kind", *SCORES, "n_params"])


def description(record: dict[str, Any]) -> str:
    clips = record["clips"]
    best = record["taggers"][record["best"]]
    return (f"{clips['all']} test clips ({clips.get('curated')} curated: one noise category alone; "
            f"{clips.get('noisy')} noisy: speech with one or more noise categories), every tagger scored on the "
            f"same ones. Best tagger by lwlrap (a tie: lwlrap on the noisy clips): {record['best']}, "
            f"{_interval(best['lwlrap'])}. Intervals: 95% bootstrap over the clips; the chance row is the expected "
            f"score of a random ranking of the labels.")


def write_leaderboard(path: Path, record: dict[str, Any]) -> None:
    table = leaderboard(record)
    lines = ["# hushkit taggers (test clips)", "", description(record), "",
             "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def report_part(folder: Path) -> ReportPart | None:
    """The report's Tagging section from a tag-summary folder (summary.json and its plots); None when it has no
    summary.json (no taggers in this pipeline)."""
    folder = Path(folder)
    if not (folder / "summary.json").is_file():
        return None
    record = json.loads((folder / "summary.json").read_text())
    return ReportPart(anchor="tagging", heading="Tagging", text=description(record), table=leaderboard(record),
                      figures=[(caption, folder / name) for name, caption in FIGURES])
