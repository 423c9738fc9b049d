"""Data checks the stages share: real per-file audio statistics validated against a GX suite."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from hushkit.checks import audio_file_stats, suites, validate


def check_audio_files(
    root: Path,
    relative_paths: list[str],
    *,
    name: str,
    report_path: Path,
    sample_rate: int,
    min_seconds: float,
    max_seconds: float | None,
    min_rms_db: float = -60.0,
) -> pd.DataFrame:
    """Read every file for real (a manifest can lie) and validate rate, length, finiteness, peak and level."""
    stats = audio_file_stats([root / p for p in relative_paths], root=root)
    validate(stats, suites.audio_files(sample_rate, min_seconds, max_seconds, min_rms_db), name=name,
             report_path=report_path)
    return stats


def check_mixture_files(mix_dir: Path, manifest: pd.DataFrame, *, name: str, report_path: Path) -> None:
    """Both sides of every mixture pair must be sound audio at the pipeline rate."""
    rate = int(manifest.sample_rate.iat[0])
    paths = list(manifest.clean_path) + list(manifest.noisy_path)
    check_audio_files(mix_dir, paths, name=name, report_path=report_path, sample_rate=rate,
                      min_seconds=0.25, max_seconds=None)
