"""Aggregates of per-file scores: each mean with a 95% bootstrap interval, per system and per SNR level or noise
category; the leaderboard (one row per system) and its JSON/Markdown forms."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hushkit.metrics import DNSMOS, METRICS
from hushkit.mixing import CONDITIONS
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


def weighted_means(per_file: pd.DataFrame, weights: dict[str, float] | None) -> pd.DataFrame:
    """system × metric: the mean over the test conditions (each condition's own mean, weighted by `weights`:
    condition → weight) of the conditions present; pooled over all files when `weights` is empty or the files
    carry no condition. A model that only fits the noise it trained on scores well on `matched` alone; weighting
    the unseen-noise and reverberant conditions in ranks the one that generalises."""
    scores = [m for m in SCORES if m in per_file]
    if not weights or "condition" not in per_file:
        return per_file.groupby("system")[scores].mean()
    unknown = sorted(set(weights) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"evaluate.condition_weights: unknown condition(s) {unknown}; known: {list(CONDITIONS)}")
    by_condition = per_file.groupby(["system", "condition"])[scores].mean().reset_index()
    by_condition["weight"] = by_condition.condition.map({k: float(v) for k, v in weights.items()}).fillna(0.0)
    by_condition = by_condition[by_condition.weight > 0]
    if by_condition.empty:
        raise ValueError(f"evaluate.condition_weights {weights}: no test file is in a weighted condition "
                         f"(the split has {sorted(per_file.condition.unique())})")
    # a metric missing in a condition (DNSMOS off there) is averaged over the conditions that have it
    weighted = by_condition[scores].mul(by_condition.weight, axis=0).groupby(by_condition.system).sum(min_count=1)
    present = by_condition[scores].notna().mul(by_condition.weight, axis=0).groupby(by_condition.system).sum()
    return weighted / present.where(present > 0)


def system_metrics(per_file: pd.DataFrame, system: str, weights: dict[str, float] | None,
                   reference: str = "noisy") -> dict[str, Any]:
    """The metrics file of one system (the same keys for every system, so `dvc metrics show/diff` line them up):
    files scored, each metric's mean over the files, the condition-weighted mean (`weighted`), the mean per
    condition, and the gains of both over `reference` (the noisy input) on the same files."""
    rows = per_file[per_file.system == system]
    scores = [m for m in SCORES if m in per_file]
    pooled = per_file.groupby("system")[scores].mean()
    weighted = weighted_means(per_file, weights)
    out: dict[str, Any] = {"system": system, "files": int(rows.id.nunique()), **_rounded(pooled.loc[system]),
                           "weighted": _rounded(weighted.loc[system])}
    if "condition" in rows:
        out["by_condition"] = {condition: _rounded(group[scores].mean())
                               for condition, group in rows.groupby("condition")}
    if reference in pooled.index and system != reference:
        out["improvement"] = _rounded(pooled.loc[system] - pooled.loc[reference])
        out["weighted_improvement"] = _rounded(weighted.loc[system] - weighted.loc[reference])
    return out


def _rounded(means: pd.Series) -> dict[str, float]:
    # A metric switched off (e.g. evaluate.dnsmos_files: 0) is left out, not written as NaN (invalid JSON).
    return {key: round(float(value), 4) for key, value in means.dropna().items()}


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


def breakdown_tables(by: pd.DataFrame, column: str, kinds: dict[str, str],
                     metrics: tuple[str, ...] = ("pesq", "stoi", "si_sdr"),
                     order: tuple[str, ...] | None = None) -> list[tuple[str, pd.DataFrame]]:
    """Per metric, a table with a row per system and a column per value of `column` in the long table `by`
    (`aggregate(per_file, [column])`): "mean [low, high]". The columns follow `order` (values it lacks are left
    out), else the values sorted."""
    present = set(by[column])
    values = [v for v in order if v in present] if order is not None else sorted(present)
    tables = []
    for metric in metrics:
        rows = by[by.metric == metric].set_index(["system", column])
        if rows["mean"].isna().all():
            continue
        digits = 2 if metric == "si_sdr" else 3
        table = pd.DataFrame({"system": list(kinds), "kind": list(kinds.values())})
        for value in values:
            table[value] = [_interval(*(rows.loc[(system, value), ["mean", "ci_low", "ci_high"]]
                                        if (system, value) in rows.index else (np.nan,) * 3), digits)
                            for system in kinds]
        tables.append((metric, table))
    return tables


def condition_tables(by_condition: pd.DataFrame, kinds: dict[str, str],
                     metrics: tuple[str, ...] = ("pesq", "stoi", "si_sdr")) -> list[tuple[str, pd.DataFrame]]:
    """Per metric, a table with a row per system and a column per test condition ("mean [low, high]")."""
    return breakdown_tables(by_condition, "condition", kinds, metrics, order=CONDITIONS)


def _interval(mean: float, low: float, high: float, digits: int) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    return header + "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False))
