"""The tagging label set: noise categories plus `speech`, and multi-hot targets over it.

The categories are the `category` of the noise files in the mix stage's `pools.csv` (the synthetic corpus's
procedural categories, a `local` noise folder's sub-folders, ESC-50's or UrbanSound8K's catalogue classes);
hushkit.tagging.categories.label_set says which of them become labels. A clip's labels are written as one string,
the names joined by `;` in label-set order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPEECH = "speech"
SEPARATOR = ";"


@dataclass(frozen=True)
class LabelSet:
    """Label names in output order: the noise categories, sorted, then `speech`."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"a label set needs distinct names, got {list(self.names)}")
        bad = [name for name in self.names if not name or SEPARATOR in name]
        if bad:
            raise ValueError(f"label names must be non-empty and free of {SEPARATOR!r}: {bad}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def noise_categories(self) -> list[str]:
        return [name for name in self.names if name != SPEECH]

    def multi_hot(self, labels: str | list[str]) -> np.ndarray:
        """(len(self),) float32 with 1 at each of `labels` (a list, or one `;`-joined string)."""
        names = split_labels(labels) if isinstance(labels, str) else list(labels)
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise ValueError(f"labels {unknown} are not in the label set {list(self.names)}")
        target = np.zeros(len(self.names), dtype=np.float32)
        target[[self.names.index(name) for name in names]] = 1.0
        return target

    def targets(self, labels: pd.Series | list[str]) -> np.ndarray:
        """(clips, len(self)) float32 multi-hot targets of `;`-joined label strings."""
        rows = [self.multi_hot(value) for value in labels]
        return np.stack(rows) if rows else np.zeros((0, len(self.names)), dtype=np.float32)

    def join(self, labels: list[str]) -> str:
        """Labels as one string, in label-set order (so equal sets give equal strings)."""
        return SEPARATOR.join(name for name in self.names if name in set(labels))


def split_labels(joined: str) -> list[str]:
    return [name for name in str(joined).split(SEPARATOR) if name]

