"""A sweep's search space file: which params.yaml keys to search, over what, and how to sample and prune.

    params:                                    # dotted params.yaml keys; {arch}: the swept architecture
      train.models.{arch}.lr: {low: 0.0005, high: 0.02, log: true}
      train.models.{arch}.epochs: {low: 2, high: 8}             # two ints: an integer range
      train.models.{arch}.batch_size: {low: 8, high: 32, step: 8}
      train.models.{arch}.schedule.name: {choices: [cosine, onecycle]}
    first:                                     # optional: trials to run before the sampler's own (any subset)
      - train.models.{arch}.lr: 0.002
    sampler: {startup_trials: 10, seed: null}  # random trials before TPE models the results; seed: reproducible
    pruner: {kind: median, startup_trials: 5, warmup_epochs: 0}   # or {kind: threshold, upper: 0.05}, {kind: none}

`load_space` reads and checks the file alone; `check_against_params` then tries every range's ends and every
choice in params.yaml's schema. Every problem is one line naming the file and the entry.
"""
from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from hushkit.errors import UserError
from hushkit.sweep.pruning import PRUNERS, PrunerSpec

ARCH = "{arch}"
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
SET_BY_THE_SWEEP = "train.architectures"   # each trial trains the swept architecture alone


class SpaceError(UserError):
    """A search space file that cannot be used: the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class Dimension:
    """One searched params key: a numeric range (`low`..`high`, optionally `log` scaled or in `step`s; ints when
    both ends and the step are ints) or a list of `choices`."""

    path: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def integer(self) -> bool:
        return self.choices is None and all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))

    def suggest(self, trial: Any) -> Any:
        """This key's value for an optuna `trial` (named by the key)."""
        if self.choices is not None:
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.path, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.path, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return any(type(value) is type(choice) and value == choice for choice in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.integer and
                                                                             not isinstance(value, int)):
            return False
        return self.low <= value <= self.high

    def ends(self) -> list[Any]:
        """The values that stand for the whole dimension when checking it against the params schema."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    source: str                                  # the file, for messages
    dimensions: tuple[Dimension, ...]
    first: tuple[dict[str, Any], ...] = ()
    startup_trials: int = 10
    seed: int | None = None
    pruner: PrunerSpec = field(default_factory=PrunerSpec)

    def identity(self) -> dict[str, Any]:
        """What every process of one study must agree on (not the seed, nor the trials to run first)."""
        return {"params": [asdict(d) | {"choices": None if d.choices is None else list(d.choices)}
                           for d in self.dimensions],
                "startup_trials": self.startup_trials, "pruner": asdict(self.pruner)}

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {dimension.path: dimension.suggest(trial) for dimension in self.dimensions}


def load_space(path: str | os.PathLike, arch: str) -> SearchSpace:
    """The search space in `path`, with {arch} replaced by `arch`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such search space file") from None
    except yaml.YAMLError as err:
        raise SpaceError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    where = str(path)
    data = _mapping(data, where, "the file")
    _only(data, {"params", "first", "sampler", "pruner"}, where, "the file")
    params = _mapping(data.get("params"), where, "params")
    if not params:
        raise SpaceError(f"{where}: params: no key to search (e.g. `train.models.{{arch}}.lr: "
                         "{low: 0.0005, high: 0.02, log: true}`)")
    dimensions = tuple(_dimension(key, spec, arch, where) for key, spec in params.items())
    paths = [d.path for d in dimensions]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise SpaceError(f"{where}: params: {', '.join(twice)} searched twice")
    for a in paths:
        for b in paths:
            if b.startswith(a + "."):
                raise SpaceError(f"{where}: params: {b} lies inside {a}, which is searched as a whole")
    sampler = _mapping(data.get("sampler"), where, "sampler")
    _only(sampler, {"startup_trials", "seed"}, where, "sampler")
    startup = _count(sampler.get("startup_trials", 10), where, "sampler.startup_trials")
    seed = sampler.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SpaceError(f"{where}: sampler.seed: {seed!r} is not an integer (or null: a fresh seed every run)")
    return SearchSpace(where, dimensions, _first(data.get("first"), dimensions, arch, where), startup, seed,
                       _pruner(data.get("pruner"), where))


def check_against_params(space: SearchSpace, params: dict[str, Any], arch: str, params_file: str) -> None:
    """Refuse keys the train stage would not use as searched: one shadowed by the architecture's own setting
    (train.common.lr while train.models.<arch>.lr is set), and values params.yaml's schema refuses (each range's
    ends, each choice)."""
    from hushkit.config import validate_params

    own = ((params.get("train") or {}).get("models") or {}).get(arch) or {}
    for dimension in space.dimensions:
        if dimension.path.startswith("train.common."):
            rest = dimension.path[len("train.common."):]
            if lookup(own, rest) is not MISSING:
                raise SpaceError(f"{space.source}: params.{dimension.path}: {params_file} sets "
                                 f"train.models.{arch}.{rest}, which overrides it for {arch}: search "
                                 f"train.models.{{arch}}.{rest} instead")
        for value in dimension.ends():
            trial = copy.deepcopy(params)
            trial.setdefault("train", {})["architectures"] = [arch]
            _assign(trial, dimension.path, value, f"{space.source}: params.{dimension.path}")
            try:
                validate_params(trial)
            except ValueError as err:
                raise SpaceError(f"{space.source}: params.{dimension.path} = {value!r}: {params_file} would not "
                                 f"accept it ({err})") from None


# --- parsing ------------------------------------------------------------------------------------------------------
MISSING = object()


def _mapping(value: Any, where: str, entry: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpaceError(f"{where}: {entry}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


def _only(mapping: dict[str, Any], known: set[str], where: str, entry: str) -> None:
    unknown = sorted(map(str, set(mapping) - known))
    if unknown:
        raise SpaceError(f"{where}: {entry}: unknown key {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _number(value: Any, where: str, entry: str) -> float | int:
    """An int or float; a string YAML 1.1 did not read as one (`1e-4`) is converted."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{where}: {entry}: {value!r} is not a finite number")
    return value


def _count(value: Any, where: str, entry: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpaceError(f"{where}: {entry}: {value!r} is not a whole number >= 0")
    return value


def _key(key: Any, arch: str, where: str) -> str:
    text = str(key)
    placeholders = set(re.findall(r"\{[^}]*\}", text)) - {ARCH}
    if placeholders:
        raise SpaceError(f"{where}: params.{text}: unknown placeholder {', '.join(sorted(placeholders))} "
                         f"(only {ARCH}, the swept architecture)")
    path = text.replace(ARCH, arch)
    if not KEY.match(path):
        raise SpaceError(f"{where}: params.{text}: not a dotted params.yaml key (like train.models.{ARCH}.lr)")
    if path == SET_BY_THE_SWEEP or path.startswith(SET_BY_THE_SWEEP + "."):
        raise SpaceError(f"{where}: params.{text}: the sweep sets {SET_BY_THE_SWEEP} to the swept architecture "
                         "(--arch); search one architecture per study")
    return path


def _dimension(key: Any, spec: Any, arch: str, where: str) -> Dimension:
    path = _key(key, arch, where)
    entry = f"params.{key}"
    spec = _mapping(spec, where, entry)
    _only(spec, {"low", "high", "log", "step", "choices"}, where, entry)
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise SpaceError(f"{where}: {entry}: choices go alone, without low, high, log or step")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: {entry}: choices must be a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, (str, int, float, bool)):
                raise SpaceError(f"{where}: {entry}: choice {choice!r} is not a number, string, boolean or null")
        if len({repr(c) for c in choices}) < len(choices):
            raise SpaceError(f"{where}: {entry}: a choice is listed twice")
        return Dimension(path, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{where}: {entry}: give low and high (a range) or choices (a list)")
    low, high = (_number(spec[k], where, f"{entry}.{k}") for k in ("low", "high"))
    if not low < high:
        hint = f" (one value: choices: [{low}])" if low == high else ""
        raise SpaceError(f"{where}: {entry}: low {low} is not below high {high}{hint}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: {entry}.log: {log!r} is not true or false")
    step = spec.get("step")
    if step is not None:
        step = _number(step, where, f"{entry}.step")
        if step <= 0:
            raise SpaceError(f"{where}: {entry}.step: {step} is not above 0")
        if log:
            raise SpaceError(f"{where}: {entry}: log and step do not go together (a log scale has no even steps)")
    if log and low <= 0:
        raise SpaceError(f"{where}: {entry}: a log scale needs low above 0, got {low}")
    return Dimension(path, low, high, log, step)


def _first(value: Any, dimensions: tuple[Dimension, ...], arch: str, where: str) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpaceError(f"{where}: first: expected a list of mappings (key: value), got {type(value).__name__}")
    by_path = {d.path: d for d in dimensions}
    points = []
    for index, point in enumerate(value):
        entry = f"first[{index}]"
        point = _mapping(point, where, entry)
        if not point:
            raise SpaceError(f"{where}: {entry}: empty (give one or more searched keys and their values)")
        resolved = {}
        for key, chosen in point.items():
            path = str(key).replace(ARCH, arch)
            if path not in by_path:
                raise SpaceError(f"{where}: {entry}.{key}: not a key under params (searched: "
                                 f"{', '.join(by_path)})")
            if isinstance(chosen, str) and by_path[path].choices is None:
                chosen = _number(chosen, where, f"{entry}.{key}")
            if not by_path[path].contains(chosen):
                raise SpaceError(f"{where}: {entry}.{key}: {chosen!r} lies outside params.{key}")
            resolved[path] = chosen
        points.append(resolved)
    return tuple(points)


def _pruner(value: Any, where: str) -> PrunerSpec:
    spec = _mapping(value, where, "pruner")
    known = {f.name for f in fields(PrunerSpec)}
    _only(spec, known, where, "pruner")
    kind = spec.get("kind", "median")
    if kind not in PRUNERS:
        raise SpaceError(f"{where}: pruner.kind: {kind!r} is not one of {', '.join(PRUNERS)}")
    upper = spec.get("upper")
    if kind == "threshold":
        if upper is None:
            raise SpaceError(f"{where}: pruner: a threshold pruner needs upper (the validation loss above which "
                             "a trial stops)")
        upper = float(_number(upper, where, "pruner.upper"))
    elif upper is not None:
        raise SpaceError(f"{where}: pruner.upper: only a threshold pruner has one (kind: {kind})")
    if kind != "median" and "startup_trials" in spec:
        raise SpaceError(f"{where}: pruner.startup_trials: only the median pruner waits for trials (kind: {kind})")
    return PrunerSpec(kind, _count(spec.get("startup_trials", 5), where, "pruner.startup_trials"),
                      _count(spec.get("warmup_epochs", 0), where, "pruner.warmup_epochs"), upper)


# --- params -------------------------------------------------------------------------------------------------------
def lookup(mapping: Any, dotted: str) -> Any:
    node = mapping
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def _assign(params: dict[str, Any], dotted: str, value: Any, entry: str) -> None:
    """Set `dotted` in `params` as `dvc exp run -S ++key=value` does (mappings created on the way)."""
    node = params
    parts = dotted.split(".")
    for index, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpaceError(f"{entry}: {'.'.join(parts[:index + 1])} is a {type(child).__name__} in params, not "
                             "a mapping")
        node = child
    node[parts[-1]] = value
