"""PNG plots of an evaluation (offline: DVC's HTML plots load a CDN): each metric per system, each metric against
the SNR level, and per noise category. Intervals are the 95% bootstrap intervals of hushkit.evaluation.aggregate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hushkit.io import atomic_path

# Grey: the noisy input; orange: reference systems; blue: trained architectures.
KIND_COLORS = {"input": "#999999", "baseline": "#d08030", "model": "#3070b0"}
SHOWN = ("pesq", "stoi", "estoi", "si_sdr", "dnsmos_ovr")
TITLES = {"pesq": "PESQ", "stoi": "STOI", "estoi": "ESTOI", "si_sdr": "SI-SDR (dB)", "dnsmos_ovr": "DNSMOS OVRL",
          "dnsmos_sig": "DNSMOS SIG", "dnsmos_bak": "DNSMOS BAK", "rtf": "real-time factor (1 thread)"}


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write `fig` to `path` as a PNG, atomically, and close it. The same figure gives the same bytes: matplotlib
    stamps a PNG with its version only, no date."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    pyplot().close(fig)


def metric_bars(board: pd.DataFrame, path: Path) -> None:
    """One panel per metric (and the RTF, when measured): a bar per system with its interval."""
    metrics = [m for m in SHOWN if board[m].notna().any()] + (["rtf"] if board.rtf.notna().any() else [])
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.8))
    colors = [KIND_COLORS.get(kind, "#3070b0") for kind in board.kind]
    x = np.arange(len(board))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        values = board[metric].to_numpy(dtype=float)
        if metric == "rtf":
            ax.bar(x, values, color=colors)
        else:
            errors = np.vstack([values - board[f"{metric}_low"], board[f"{metric}_high"] - values])
            ax.bar(x, values, color=colors, yerr=np.nan_to_num(errors), capsize=2, error_kw={"lw": 0.8})
            finite = values[np.isfinite(values)]
            if finite.size:  # zoom on the differences: bars from just below the worst system
                low = np.nanmin(board[f"{metric}_low"])
                ax.set_ylim(low - 0.15 * (np.nanmax(board[f"{metric}_high"]) - low + 1e-9), None)
        ax.set_xticks(x, board.system, rotation=50, ha="right", fontsize=8)
        ax.set_title(TITLES[metric], fontsize=10)
    save_figure(fig, path)


def metric_vs_snr(by_snr: pd.DataFrame, kinds: dict[str, str], path: Path) -> None:
    """One panel per metric: a line per system over the SNR levels, its interval shaded."""
    metrics = [m for m in SHOWN if by_snr[by_snr.metric == m]["mean"].notna().any()]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.8 * len(metrics), 3.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, metric in zip(axes[0], metrics):
        rows = by_snr[by_snr.metric == metric]
        for i, system in enumerate(kinds):
            line = rows[rows.system == system].sort_values("target_snr_db")
            style = {"color": "black", "ls": "--"} if kinds[system] == "input" else {"color": cmap(i % 10)}
            ax.plot(line.target_snr_db, line["mean"], marker="o", ms=3, lw=1.2, label=system, **style)
            ax.fill_between(line.target_snr_db, line.ci_low, line.ci_high, alpha=0.12, color=style["color"])
        ax.set_xlabel("input SNR (dB)")
        ax.set_title(TITLES[metric], fontsize=10)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save_figure(fig, path)


def metric_by_category(by_category: pd.DataFrame, kinds: dict[str, str], path: Path,
                       metrics: tuple[str, ...] = ("pesq", "si_sdr", "dnsmos_ovr"), column: str = "noise_category",
                       what: str = "noise category") -> None:
    """One heat map per metric: systems × the values of `column` (the noise categories; `what` names them in the
    titles), each cell its mean (n in the long table)."""
    metrics = [m for m in metrics if by_category[by_category.metric == m]["mean"].notna().any()]
    plt = pyplot()
    categories = sorted(by_category[column].unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(0.75 * len(categories) * len(metrics) + 3,
                                                       0.38 * len(kinds) + 1.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        grid = (by_category[by_category.metric == metric]
                .pivot(index="system", columns=column, values="mean")
                .reindex(index=list(kinds), columns=categories))
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis")
        for (r, c), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(c, r, f"{value:.2f}" if metric != "si_sdr" else f"{value:.1f}", ha="center", va="center",
                        fontsize=6.5, color="white" if value < np.nanmean(grid.to_numpy()) else "black")
        ax.set_xticks(range(len(categories)), categories, rotation=50, ha="right", fontsize=8)
        ax.set_yticks(range(len(kinds)), list(kinds), fontsize=8)
        ax.set_title(f"{TITLES[metric]} per {what}", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.04)
    save_figure(fig, path)


def metric_by_condition(by_condition: pd.DataFrame, kinds: dict[str, str], path: Path,
                        metrics: tuple[str, ...] = ("pesq", "stoi", "si_sdr")) -> None:
    """One panel per metric: for each test condition a group of bars (one per system) with 95% intervals."""
    conditions = [c for c in ("matched", "unseen_noise", "reverberant") if c in set(by_condition.condition)]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    width = 0.8 / max(1, len(kinds))
    cmap = plt.get_cmap("tab10")
    for ax, metric in zip(axes[0], metrics):
        rows = by_condition[by_condition.metric == metric].set_index(["system", "condition"])
        for i, system in enumerate(kinds):
            means, lows, highs = (np.array([rows[col].get((system, c), np.nan) for c in conditions], dtype=float)
                                  for col in ("mean", "ci_low", "ci_high"))
            color = KIND_COLORS["input"] if kinds[system] == "input" else cmap(i % 10)
            ax.bar(np.arange(len(conditions)) + (i - (len(kinds) - 1) / 2) * width, means, width, color=color,
                   yerr=np.nan_to_num(np.vstack([means - lows, highs - means])), capsize=1.5,
                   error_kw={"lw": 0.7}, label=system)
        finite = rows["ci_low"].to_numpy(dtype=float)
        if np.isfinite(finite).any():
            low, high = np.nanmin(finite), np.nanmax(rows["ci_high"].to_numpy(dtype=float))
            ax.set_ylim(low - 0.15 * (high - low + 1e-9), None)
        ax.set_xticks(range(len(conditions)), [c.replace("_", " ") for c in conditions], fontsize=8)
        ax.set_title(TITLES[metric], fontsize=10)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save_figure(fig, path)
