"""PNG plots of the taggers' scores (the tag-summary stage; the report's Tagging section): per-class lwlrap with its
95 % intervals, a bar per tagger in each class's group, and a tagger's confusions as a heat map. Written like the
denoisers' plots (hushkit.evaluation.plots): Agg, atomic, the same bytes for the same scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hushkit.evaluation.plots import pyplot, save_figure


def per_class_bars(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """`tables`: tagger → its per_class.csv (label, lwlrap, low, high), all with the same labels. One group of bars
    per label, one bar per tagger, whiskers from low to high; a class without a positive test clip has no bar."""
    labels = list(next(iter(tables.values())).label)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) * max(1, len(tables)) + 2.0), 4.0))
    width = 0.8 / len(tables)
    cmap = plt.get_cmap("tab10")
    x = np.arange(len(labels))
    for i, (tagger, table) in enumerate(tables.items()):
        rows = table.set_index("label").reindex(labels)
        values = rows.lwlrap.to_numpy(dtype=float)
        errors = np.vstack([values - rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float) - values])
        ax.bar(x + (i - (len(tables) - 1) / 2) * width, np.nan_to_num(values), width, color=cmap(i % 10),
               yerr=np.nan_to_num(errors), capsize=1.5, error_kw={"lw": 0.7}, label=tagger)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("lwlrap")
    ax.set_title("Per-class lwlrap on the test clips (whiskers: 95% bootstrap interval)", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path)


def confusion_heatmap(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """`matrix`: true label (rows) × label scored (columns), as hushkit.tagging.metrics.label_confusion gives it; each
    cell written in; a cell without clips (NaN) left blank."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"a confusion matrix for {len(labels)} labels must be {len(labels)} x {len(labels)}, got "
                         f"{matrix.shape}")
    plt = pyplot()
    size = 0.45 * len(labels) + 2.5
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0.0, vmax=1.0)
    for (r, c), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=6.5,
                    color="white" if value < 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("label scored (mean probability)")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04)
    save_figure(fig, path)
