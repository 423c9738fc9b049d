"""Aggregates of per-file scores: each mean with a 95% bootstrap interval, per system and per SNR level or noise
category; the leaderboard (one row per system) and its JSON/Markdown forms."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hushkit.metrics import DNSMOS, METRICS

SCORES = (*METRICS, *DNSMOS)
BOOTSTRAP = {"resamples": 2000, "level": 0.95, "seed": 0}


def bootstrap_interval(values: np.ndarray, resamples: int = BOOTSTRAP["resamples"], level: float = BOOTSTRAP["level"],
                       seed: int = BOOTSTRAP["seed"]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values: a percentile bootstrap of the mean, seeded (reruns agree)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan, 0
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(values.mean()), float(low), float(high), int(values.size)


def aggregate(per_file: pd.DataFrame, by: list[str] = ()) -> pd.DataFrame:
    """Long table: one row per system (× each `by` value) × metric with mean, ci_low, ci_high, n. The real-time
    factor is total processing time over total audio time (a mean of ratios would favour short files)."""
    rows = []
    for key, group in per_file.groupby(["system", *by], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(["system", *by], key))
        for metric in SCORES:
            mean, low, high, n = bootstrap_interval(group[metric].to_numpy())
            rows.append({**labels, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "n": n})
        if "seconds" in group:
            rtf = float(group.seconds.sum() / group.duration.sum())
            rows.append({**labels, "metric": "rtf", "mean": rtf, "ci_low": np.nan, "ci_high": np.nan,
                         "n": len(group)})
    return pd.DataFrame(rows)


def leaderboard(per_file: pd.DataFrame, kinds: dict[str, str], reference: str = "noisy") -> pd.DataFrame:
    """One row per system, in the order of `kinds` (system → input | baseline | model): every metric's mean with
    its interval (`<metric>_low`, `<metric>_high`), the gain over `reference` on the same files, and the RTF when
    `per_file` has the timings (NaN otherwise)."""
    long = aggregate(per_file)
    wide = long.pivot(index="system", columns="metric", values="mean")
    board = pd.DataFrame({"system": list(kinds), "kind": list(kinds.values())})
    for metric in SCORES:
        bounds = long[long.metric == metric].set_index("system")
        board[metric] = board.system.map(wide[metric])
        board[f"{metric}_low"] = board.system.map(bounds.ci_low)
        board[f"{metric}_high"] = board.system.map(bounds.ci_high)
        board[f"delta_{metric}"] = board[metric] - float(wide.loc[reference, metric])
    board["rtf"] = board.system.map(wide["rtf"]) if "rtf" in wide else np.nan
    board["files"] = board.system.map(per_file.groupby("system").id.nunique())
    board["dnsmos_files"] = board.system.map(per_file.groupby("system").dnsmos_ovr.count())
    return board


def to_json(board: pd.DataFrame) -> dict[str, Any]:
    """{system: {kind, files, [rtf], <metric>: {mean, ci_low, ci_high, delta}}} for leaderboard.json (rtf only
    when measured)."""
    out = {}
    for row in board.to_dict("records"):
        entry = {"kind": row["kind"], "files": int(row["files"]), "dnsmos_files": int(row["dnsmos_files"])}
        if not pd.isna(row["rtf"]):
            entry["rtf"] = _round(row["rtf"])
        for metric in SCORES:
            entry[metric] = {"mean": _round(row[metric]), "ci_low": _round(row[f"{metric}_low"]),
                             "ci_high": _round(row[f"{metric}_high"]), "delta": _round(row[f"delta_{metric}"])}
        for extra in ("n_params", "gmacs_per_second"):
            if extra in row and not pd.isna(row[extra]):
                entry[extra] = row[extra]
        out[row["system"]] = entry
    return out


def _round(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 4)


def with_intervals(board: pd.DataFrame, metrics: tuple[str, ...] = SCORES) -> pd.DataFrame:
    """The leaderboard for reading: each metric as "mean [low, high]" text, gains and cost columns kept."""
    table = board[["system", "kind"]].copy()
    for metric in metrics:
        digits = 2 if metric == "si_sdr" else 3
        table[metric] = [_interval(m, lo, hi, digits) for m, lo, hi in
                         zip(board[metric], board[f"{metric}_low"], board[f"{metric}_high"])]
    for metric in ("pesq", "si_sdr", "dnsmos_ovr"):
        table[f"Δ{metric}"] = board[f"delta_{metric}"].map(lambda v: "" if pd.isna(v) else f"{v:+.3f}")
    if board.rtf.notna().any():
        table["rtf"] = board.rtf.map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    if "n_params" in board:
        table["n_params"] = board.n_params.map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    table["files"] = board.files
    table["dnsmos_files"] = board.dnsmos_files
    return table


def _interval(mean: float, low: float, high: float, digits: int) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    return header + "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False))
