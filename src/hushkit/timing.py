"""What differs on every run by nature: processing and training times.

These never go into a DVC output or metric, where a new value on every run would make identical results look changed
(and rerun everything downstream). A stage writes them to TIMING_FILE beside its outputs: a file dvc.yaml does not
declare, that .dvcignore hides from DVC's hashing (a stage depending on the folder does not see it) and git ignores.
The stages log the same figures to MLflow; the summary stage gathers the files into its timing table. A stage DVC
restored from its cache instead of running has no timing file: its figures are then MLflow's only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hushkit.io import write_json

TIMING_FILE = "timing.json"
TIMING_COLUMNS = ("seconds", "rtf")  # per-file columns of hushkit.evaluation.scoring.score_system


def split_timing(per_file: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-file scores without their timing columns, and the timing: the real-time factor (total processing time
    over total audio time, one thread) and each file's seconds."""
    scores = per_file.drop(columns=[c for c in TIMING_COLUMNS if c in per_file.columns])
    seconds = per_file.seconds.astype(float)
    timing = {"rtf": round(float(seconds.sum() / per_file.duration.sum()), 6),
              "processing_seconds": round(float(seconds.sum()), 4),
              "audio_seconds": round(float(per_file.duration.sum()), 4),
              "seconds_per_file": {str(i): round(float(s), 6) for i, s in zip(per_file.id, seconds)}}
    return scores, timing


def write_timing(folder: str | Path, timing: dict[str, Any]) -> None:
    write_json(Path(folder) / TIMING_FILE, timing)


def read_timing(folder: str | Path) -> dict[str, Any] | None:
    """The folder's timing, or None when the stage did not run here (restored by DVC) or its file is damaged."""
    path = Path(folder) / TIMING_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
