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


def architecture_params(train: dict[str, Any], arch: str, registered: list[str], section: str = "train"
                        ) -> dict[str, Any]:
    """One architecture's training settings: `train.common` with `train.models.<arch>` merged over it, so a
    `dvc exp run -S train.models.<arch>.lr=...` changes that architecture alone. `registered`: the model names
    there are (hushkit.models.available_models()); `section`: the params section `train` is (`tagging` for the
    taggers'), as errors name it."""
    listed = train.get("architectures") or []
    if arch not in listed:
        raise ValueError(f"{section}.architectures {listed} does not list {arch!r}")
    models = train.get("models") or {}
    # Settings may stay for registered architectures that are not listed (training a subset is one edit of
    # train.architectures); a name that is no model at all is a typo that would silently train the defaults.
    registered = sorted(registered)
    unknown = sorted(set(models) - set(registered))
    if unknown:
        raise ValueError(f"{section}.models has settings for {unknown}, which are not registered models "
                         f"(registered: {registered})")
    settings = deep_merge(train.get("common") or {}, models.get(arch) or {})
    settings["model"] = arch
    return settings


# --- profiles -----------------------------------------------------------------------------------------------------
# A profile (profiles/<name>.yaml) is an overlay of params.yaml. `apply_profile` writes it into params.yaml itself,
# so plain `dvc repro` (and `dvc exp run`, `dvc params diff`) runs it: DVC reads params.yaml and nothing else.

PROFILES = Path("profiles")


def profile_path(profile: str | os.PathLike, profiles: Path = PROFILES) -> Path:
    """`real-small` → <profiles>/real-small.yaml (the repo's profiles/ by default); an existing file path is taken as
    it is."""
    path = Path(profile)
    if path.is_file():
        return path
    named = Path(profiles) / f"{profile}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in Path(profiles).glob("*.yaml")) if Path(profiles).is_dir() else []
    raise FileNotFoundError(f"profile {str(profile)!r}: neither {named} nor a file {path}; known: {', '.join(known)}")


def apply_profile(params_path: str | os.PathLike, profile: str | os.PathLike) -> tuple[str, list[str]]:
    """The text of `params_path` with the profile merged in (deep_merge's rules; comments and layout kept) and
    the dotted keys whose values it changed. `profile` may name several overlays separated by commas
    (`real-small,gpu`: a data profile, then the GPU overlay), merged in that order."""
    import io

    from hushkit.errors import import_extra

    YAML = import_extra("ruamel.yaml", "pipeline", "applying a profile (hushkit params --profile)").YAML
    yaml_rt = YAML()  # round-trip: keeps params.yaml's comments, flow style and key order
    yaml_rt.width = 4096
    yaml_rt.preserve_quotes = True
    yaml_rt.indent(mapping=2, sequence=2, offset=0)
    yaml_rt.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    overlay_files = [profile_path(name.strip()) for name in str(profile).split(",") if name.strip()]
    if not overlay_files:
        raise ValueError(f"profile {str(profile)!r}: no profile named")
    base = yaml_rt.load(Path(params_path).read_text(encoding="utf-8"))
    before = load_params(params_path)
    expected = before
    for overlay_file in overlay_files:
        overlay = yaml_rt.load(overlay_file.read_text(encoding="utf-8")) or {}
        if not isinstance(base, dict) or not isinstance(overlay, dict):
            raise ValueError(f"{params_path} and {overlay_file} must both be mappings at the top level")
        _merge_into(base, overlay)
        expected = deep_merge(expected, yaml.safe_load(overlay_file.read_text(encoding="utf-8")) or {})
    buffer = io.StringIO()
    yaml_rt.dump(base, buffer)
    text = buffer.getvalue()
    # The written file must mean exactly what deep_merge (the tests' reading of a profile) makes of them.
    if yaml.safe_load(text) != expected:
        raise AssertionError(f"merging {', '.join(map(str, overlay_files))} into {params_path} changed more than "
                             "the profiles say")
    flat_before, flat_after = _flat(before), _flat(expected)
    changed = [k for k in flat_after if k not in flat_before or flat_before[k] != flat_after[k]]
    return text, changed


def _merge_into(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = value


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
