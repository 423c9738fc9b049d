"""Measure files and arrays into rows that the GX suites check: the checks look at the data, not at manifests."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from hushkit import audio as hk_audio

SILENCE_DB = -200.0  # rms_db of digital silence (no finite non-zero sample): finite, and below any sane bound

AUDIO_STATS_COLUMNS = ["path", "readable", "error", "sample_rate", "channels", "frames", "duration", "peak",
                       "rms_db", "nonfinite", "all_finite"]


def audio_file_stats(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read every file for real; one row per file in AUDIO_STATS_COLUMNS. Never raises for a bad file:
    an unreadable one (missing, empty, not audio) gets readable=False and the reason in `error`."""
    rows = [_audio_row(Path(p), Path(root) if root is not None else None) for p in paths]
    return pd.DataFrame(rows, columns=AUDIO_STATS_COLUMNS)


def _audio_row(path: Path, root: Path | None) -> dict:
    row = {"path": _display(path, root), "readable": False, "error": "", "sample_rate": 0, "channels": 0,
           "frames": 0, "duration": 0.0, "peak": 0.0, "rms_db": SILENCE_DB, "nonfinite": 0, "all_finite": False}
    try:
        audio, sr = hk_audio.read_audio(path, always_2d=True)
    except hk_audio.AudioReadError as err:
        row["error"] = str(err).removeprefix(f"{path}: ").replace(f"Error opening {str(path)!r}: ", "")
        return row
    except Exception as err:  # noqa: BLE001 - a permission or I/O error is a failed check, not a crash
        row["error"] = f"{type(err).__name__}: {err}"
        return row
    finite_mask = np.isfinite(audio)
    finite = audio[finite_mask]
    nonfinite = int(audio.size - finite.size)
    peak = hk_audio.peak(finite)
    row.update(
        readable=True,
        sample_rate=int(sr),
        channels=int(audio.shape[1]),
        frames=int(audio.shape[0]),
        duration=audio.shape[0] / sr,
        peak=peak,
        rms_db=hk_audio.rms_db(finite) if peak > 0.0 else SILENCE_DB,
        nonfinite=nonfinite,
        all_finite=nonfinite == 0,
    )
    return row


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def array_stats(name: str, array: np.ndarray) -> dict:
    """Shape, dtype and value range of one array (e.g. a packed feature file): a row for `suites.feature_arrays`."""
    a = np.asarray(array)
    numeric = a.dtype.kind in "biufc"
    finite = a[np.isfinite(a)] if numeric else a.reshape(-1)[:0]
    nonfinite = int(a.size - finite.size) if numeric else 0
    if a.dtype.kind == "c":
        finite = np.abs(finite)
    return {
        "name": name,
        "shape": str(tuple(a.shape)),
        "dtype": str(a.dtype),
        "ndim": int(a.ndim),
        "size": int(a.size),
        "nonfinite": nonfinite,
        "all_finite": bool(numeric and nonfinite == 0),
        "min": float(finite.min()) if finite.size else float("nan"),
        "max": float(finite.max()) if finite.size else float("nan"),
        "peak": float(np.max(np.abs(finite))) if finite.size else 0.0,
    }
