"""params.yaml access: stages read their own section; profiles are deep-merged overlays of it."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def section(name: str, path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    params = load_params(path)
    if name not in params:
        raise KeyError(f"{path}: no '{name}' section")
    return params[name]


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `overlay` merged in; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def architecture_params(train: dict[str, Any], arch: str) -> dict[str, Any]:
    """One architecture's training settings: `train.common` with `train.models.<arch>` merged over it, so a
    `dvc exp run -S train.models.<arch>.lr=...` changes that architecture alone."""
    listed = train.get("architectures") or []
    if arch not in listed:
        raise ValueError(f"train.architectures {listed} does not list {arch!r}")
    models = train.get("models") or {}
    # Settings may stay for registered architectures that are not listed (training a subset is one edit of
    # train.architectures); a name that is no model at all is a typo that would silently train the defaults.
    from hushkit.models import available_models

    registered = available_models()
    unknown = sorted(set(models) - set(registered))
    if unknown:
        raise ValueError(f"train.models has settings for {unknown}, which are not registered models "
                         f"(registered: {registered})")
    settings = deep_merge(train.get("common") or {}, models.get(arch) or {})
    settings["model"] = arch
    return settings
