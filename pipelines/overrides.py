"""The params of a retrain run: `repo`'s params.yaml, then a profile overlaid, then `dvc exp run -S`-style
overrides, then the list of architectures to train."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hushkit.params import deep_merge, load_params, profile_path

_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _value(raw: str) -> Any:
    value = yaml.safe_load(raw) if raw.strip() else ""
    # YAML 1.1 reads 1e-3 as a string; `dvc exp run -S` (Hydra) reads it as a number.
    return float(raw) if isinstance(value, str) and _EXPONENT.fullmatch(raw.strip()) else value


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `params` with `dvc exp run -S`-style overrides: `key=value` changes an existing key, `+key=value`
    adds a new one, `++key=value` sets it either way, `~key` removes it. Keys are dotted, values YAML."""
    params = deep_merge(params, {})
    for item in overrides:
        item = item.strip()
        if item.startswith("~"):
            *path, last = item[1:].split(".")
            node = _walk(params, path, item, create=False)
            if last not in node:
                raise ValueError(f"override {item!r}: no key {item[1:]!r} to remove")
            del node[last]
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.lstrip("+"):
            raise ValueError(f"override {item!r}: expected key=value (or +key=value, ++key=value, ~key)")
        mode = "force" if key.startswith("++") else "add" if key.startswith("+") else "set"
        *path, last = key.lstrip("+").split(".")
        node = _walk(params, path, item, create=mode != "set")
        if mode == "set" and last not in node:
            raise ValueError(f"override {item!r}: params have no key {key!r} (prefix it with ++ to add it)")
        if mode == "add" and last in node:
            raise ValueError(f"override {item!r}: key {key.lstrip('+')!r} exists (use ++ to override it)")
        node[last] = _value(raw)
    return params


def _walk(params: dict[str, Any], path: list[str], item: str, create: bool) -> dict[str, Any]:
    node = params
    for part in path:
        if part not in node and create:
            node[part] = {}
        if not isinstance(node.get(part), dict):
            raise ValueError(f"override {item!r}: {part!r} is not a mapping in params")
        node = node[part]
    return node


def effective_params(repo: Path, profile: str | None = None, overrides: list[str] | None = None,
                     architectures: list[str] | None = None) -> dict[str, Any]:
    """params.yaml of `repo` with the profile overlaid, then the overrides, then the architecture list."""
    params = load_params(repo / "params.yaml")
    if profile:
        params = deep_merge(params, yaml.safe_load(profile_path(profile, repo / "profiles").read_text()) or {})
    params = apply_overrides(params, list(overrides or []))
    if architectures:
        from hushkit.models import available_models

        unknown = sorted(set(architectures) - set(available_models()))
        if unknown:
            raise ValueError(f"architectures {unknown} are not registered models: {available_models()}")
        params.setdefault("train", {})["architectures"] = list(architectures)
    return params
