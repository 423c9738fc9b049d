"""Resumable training state: one file, replaced atomically at the end of each checkpointed epoch, so a run killed
at any moment leaves the last complete state behind.

The state holds plain containers only (tensors, numbers, strings, lists, dicts), so it loads with
``weights_only=True``: reading it runs no pickled code. A state is resumed only by the run it was saved for: the
caller's `fingerprint` (a hash of its settings and data) must match, so a stale state never leaks into another run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from hushkit.io import atomic_path

# Bumped whenever the state's layout changes: an older file is then ignored instead of half-loaded.
FORMAT_VERSION = 3


def save_training_state(path: Path, fingerprint: str, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT_VERSION, "fingerprint": fingerprint, **state}, tmp)


def load_training_state(path: Path | None, fingerprint: str,
                        log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """The state saved at `path` for the run `fingerprint` names, or None when there is none to resume; `log`
    says why a file that exists is not used."""
    if path is None or not Path(path).exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != FORMAT_VERSION:
        log(f"{path}: saved training state has format {state.get('format')}, this version reads "
            f"{FORMAT_VERSION}; starting fresh")
        return None
    if state.get("fingerprint") != fingerprint:
        log(f"{path}: saved training state belongs to a different run (settings or data changed); starting fresh")
        return None
    return state
