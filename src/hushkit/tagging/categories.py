"""Which of the corpus's noise categories the tagger learns as labels, and from which files of each split.

The mix stage's `pools.csv` gives every corpus file its split: train, val, test, or `unseen` (UNSEEN) for the noise
of the categories held out of the denoisers' training (`mix.conditions.unseen_noise`: the test's unseen-noise
condition alone uses them). The labels are noise categories, sorted, then `speech`:

* a category with training files is a label;
* a held-out category (no training file) is one only with `tagging.clips.held_out: learn`: its noise instances are
  then split among the tagger's own train, val and test (`tagger_splits`). With `skip` it has nothing to learn
  from and is left out. Either way `label_set` names the held-out categories;
* `uncategorized` (UNCATEGORIZED: noise nobody named, such as the files directly in a `local` noise folder) is
  never a label. Its noise still makes clips (hushkit.tagging.clips): a curated clip of it alone carries no label
  at all, a negative for every label (speech included: without it a corpus of unnamed noise would have no clip
  without speech), and a noisy clip with it carries only the other categories mixed in, and speech.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from hushkit.config.data import UNCATEGORIZED, UNSEEN
from hushkit.tagging.labels import SPEECH, LabelSet

# The smallest number of a held-out category's noise instances that can give the tagger's train, val and test one
# instance each.
MIN_HELD_OUT_INSTANCES = 3


def _noise(pools: pd.DataFrame) -> pd.DataFrame:
    missing = sorted({"kind", "path", "split", "category"} - set(pools.columns))
    if missing:
        raise ValueError(f"pools table lacks the columns {missing} (the mix stage's pools.csv has them)")
    return pools[pools.kind == "noise"].fillna({"category": ""})


def label_set(pools: pd.DataFrame, learn_held_out: bool = False) -> tuple[LabelSet, list[str]]:
    """(the label set, the categories the denoisers never train on) from a `pools.csv` table (columns kind, path,
    split, category): every noise category with training files, and with `learn_held_out` every held-out one
    too, but never UNCATEGORIZED; sorted, then `speech`. A corpus whose only noise is unnamed gives just
    `speech`. ValueError when there is no noise, when no category has files to learn from, or when one is
    literally named `speech`."""
    noise = _noise(pools)
    if noise.empty:
        raise ValueError("pools table: no noise file; tagging needs noise to make clips of")
    categories = set(noise.category)
    if SPEECH in categories:
        raise ValueError(f"a noise category is named {SPEECH!r}, which is the speech label; rename its folder")
    trained = set(noise[noise.split == "train"].category)
    learnable = trained | (set(noise[noise.split == UNSEEN].category) if learn_held_out else set())
    if not learnable:
        raise ValueError("pools table: no noise category has training files; tagging needs at least one (or "
                         "tagging.clips.held_out: learn, to learn the held-out ones)")
    names = sorted(learnable - {UNCATEGORIZED})
    return LabelSet((*names, SPEECH)), sorted(categories - trained)


def _category_stream(seed: int, category: str) -> np.random.Generator:
    """A random stream of the category's own (from the clips' seed and its name), so adding or removing another
    category leaves its split as it was."""
    key = int.from_bytes(hashlib.sha256(category.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key])


def held_out_splits(pools: pd.DataFrame, seed: int) -> dict[str, str]:
    """noise file → the tagger's split, for every noise file of the held-out split (UNSEEN), category by category:
    a fifth of its instances (at least one) test, a tenth (at least one) val, the rest train, drawn from `seed`.
    ValueError naming a category with fewer than MIN_HELD_OUT_INSTANCES instances."""
    noise = _noise(pools)
    assignment: dict[str, str] = {}
    for category, group in noise[noise.split == UNSEEN].groupby("category", sort=True):
        paths = sorted(group.path)
        if len(paths) < MIN_HELD_OUT_INSTANCES:
            raise ValueError(f"tagging.clips.held_out is learn, but the held-out noise category {category!r} has "
                             f"{len(paths)} instance{'s' if len(paths) != 1 else ''}; it needs at least "
                             f"{MIN_HELD_OUT_INSTANCES} (one each for the tagger's train, val and test)")
        n_test, n_val = max(1, len(paths) // 5), max(1, len(paths) // 10)
        for rank, index in enumerate(_category_stream(seed, category).permutation(len(paths))):
            assignment[paths[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return assignment


def tagger_splits(pools: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`pools` with the held-out categories' noise files moved from UNSEEN into the tagger's train, val and test
    (`held_out_splits`); every other row as it was."""
    assignment = held_out_splits(pools, seed)
    out = pools.copy()
    moved = out.path.isin(list(assignment)) & (out.kind == "noise")
    out.loc[moved, "split"] = out.loc[moved, "path"].map(assignment)
    return out
