"""The machinery of the params schema: typed sections read from params.yaml mappings by one check.

A section is a frozen dataclass deriving from `Section`, one field per params key. A field's annotation is the type
its value must have (bool, int, float, str, `X | None`, `list[X]`, `dict[str, X]`, another Section); `param(...)`
gives it a default and a rule (`at_least`, `above`, `within`, `one_of`, `nonempty`), and a section's `check()` adds
rules that span fields. `Section.parse(mapping, where)` refuses unknown and missing keys and values of the wrong
type or out of range, naming the dotted key, the value and the known keys:

    train.models.crnn: unknown key 'lrr'; known: adversarial, audio_examples, batch_size, ...
    train.models.crnn.epochs must be an int, got '8'

Building a section directly runs the same type and value checks (the message then names the key alone). An int is a
float too (and becomes one); a YAML boolean is neither.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Callable, ClassVar, Mapping


class ParamsError(ValueError):
    """A params value or mapping that does not fit the schema. `path` is the dotted key it concerns, relative to
    where the parse started ("" for that mapping itself); `text` says what is wrong (" must be ..." after a value,
    ": unknown key ..." after a mapping); `key` is the key inside `path` it is about, if any (an unknown or missing
    key), so a caller can tell which of several merged mappings holds it."""

    def __init__(self, path: str, text: str, key: str = ""):
        self.path, self.text, self.key = path, text, key
        super().__init__(f"{path}{text}" if path else text.removeprefix(": "))

    def within(self, where: str) -> "ParamsError":
        """The same error seen from the mapping `where` above it."""
        return type(self)(".".join(p for p in (where, self.path) if p), self.text, self.key)

    @property
    def dotted_key(self) -> str:
        """The key the problem is about, relative to where the parse started (the path, with `key` when it names one
        inside it)."""
        return ".".join(p for p in (self.path, self.key) if p)


class RenamedKey(ParamsError):
    """An old key: `key` is its new name, `text` the value to write under it."""

    def __init__(self, path: str, text: str, key: str = ""):
        ParamsError.__init__(self, path, text, key)
        parent = path.rpartition(".")[0]
        self.args = (f"{path} was replaced by {'.'.join(p for p in (parent, key) if p)}: write {key}: {text}",)

    @property
    def dotted_key(self) -> str:
        return self.path


# --- rules: (holds(value), what it must be) -----------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    holds: Callable[[Any], bool]
    requirement: str  # "must <requirement>, got <value>"


def _note(text: str, note: str) -> str:
    return f"{text} ({note})" if note else text


def at_least(bound: float, note: str = "") -> Rule:
    return Rule(lambda v: v >= bound, _note(f"be >= {bound}", note))


def above(bound: float, note: str = "") -> Rule:
    return Rule(lambda v: v > bound, _note(f"be > {bound}", note))


def within(low: float, high: float, *, open_low: bool = False, open_high: bool = False, note: str = "") -> Rule:
    def holds(v: float) -> bool:
        return (low < v if open_low else low <= v) and (v < high if open_high else v <= high)
    interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    return Rule(holds, _note(f"be in {interval}", note))


def one_of(*choices: Any, note: str = "") -> Rule:
    return Rule(lambda v: v in choices, _note(f"be one of {list(choices)}", note))


def nonempty(note: str = "") -> Rule:
    return Rule(lambda v: len(v) > 0, _note("not be empty", note))


def param(default: Any = MISSING, *, rule: Rule | None = None, factory: Callable[[], Any] | None = None) -> Any:
    """A params key with an optional default (`factory` for a mutable one) and rule; a None value skips the rule."""
    metadata = {"rule": rule}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def derived(default: Any) -> Any:
    """A field that is no params key: its owner sets it (e.g. a crop length the features stage decides)."""
    return dataclasses.field(default=default, metadata={"params": False})


# --- sections -----------------------------------------------------------------------------------------------------

class Section:
    """Base of every schema section (subclasses are `@dataclass(frozen=True)`)."""

    # Keys that were renamed: old key → new key; the error says what to write instead.
    RENAMED: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f.name)
            rule = f.metadata.get("rule")
            if rule is not None and value is not None and not rule.holds(value):
                raise ParamsError(f.name, f" must {rule.requirement}, got {value!r}")
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Rules across fields; raise ParamsError(key, " must ...") naming the key to change."""

    @classmethod
    def keys(cls) -> list[str]:
        """The params keys of this section, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("params", True)]

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str = "", **derived_values: Any):
        """`data` (a params mapping; None reads as empty) as this section; `where` is its dotted location for the
        messages; `derived_values` set the fields that are no params keys."""
        try:
            return cls(**cls._arguments(data), **derived_values)
        except ParamsError as err:
            raise err.within(where) from None

    @classmethod
    def _arguments(cls, data: Mapping[str, Any] | None) -> dict[str, Any]:
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ParamsError("", f" must be a mapping with keys {', '.join(sorted(cls.keys()))}, got {data!r}")
        known = cls.keys()
        unknown = [key for key in data if key not in known]
        for key in unknown:
            if key in cls.RENAMED:
                new = cls.RENAMED[key]
                raise RenamedKey(key, _example(cls, new, data[key]), new)
        if unknown:
            names = ", ".join(repr(str(k)) for k in unknown)
            raise ParamsError("", f": unknown key{'s' if len(unknown) > 1 else ''} {names}; "
                                  f"known: {', '.join(sorted(known))}", key=str(unknown[0]))
        defaults = {f.name for f in dataclasses.fields(cls)
                    if f.default is not MISSING or f.default_factory is not MISSING}
        missing = [key for key in known if key not in data and key not in defaults]
        if missing:
            names = ", ".join(repr(k) for k in missing)
            raise ParamsError("", f": missing key{'s' if len(missing) > 1 else ''} {names}", key=missing[0])
        return dict(data)


def _example(cls: type, key: str, value: Any) -> str:
    """`value` as the renamed key `key` takes it (a list field gets a one-item list)."""
    origin = typing.get_origin(_hints(cls)[key])
    wants_list = origin is list or (_is_union(_hints(cls)[key]) and
                                    any(typing.get_origin(a) is list for a in typing.get_args(_hints(cls)[key])))
    return f"[{value}]" if wants_list and not isinstance(value, list) else str(value)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def _describe(kind: Any) -> str:
    if _is_union(kind):
        return " or ".join(_describe(a) for a in typing.get_args(kind))
    origin = typing.get_origin(kind)
    if origin is list:
        return f"a list of {_describe(typing.get_args(kind)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict or (isinstance(kind, type) and issubclass(kind, Section)):
        return "a mapping"
    name = {bool: "boolean", int: "int", float: "float", str: "string", type(None): "null"}.get(kind, str(kind))
    return "null" if kind is type(None) else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _coerce(value: Any, kind: Any, path: str) -> Any:
    """`value` checked against the annotation `kind` (and converted: int → float, mapping → Section)."""
    if kind is Any:
        return value
    if _is_union(kind):
        if value is None and type(None) in typing.get_args(kind):
            return None
        # The first option of the value's shape decides (its own errors, e.g. a nested unknown key, stand).
        option = next((o for o in typing.get_args(kind) if _shape_fits(value, o)), None)
        if option is None:
            raise _mismatch(value, kind, path)
        return _coerce(value, option, path)
    origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _mismatch(value, kind, path)
        (item,) = typing.get_args(kind)
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _mismatch(value, kind, path)
        _, item = typing.get_args(kind)
        return {k: _coerce(v, item, f"{path}.{k}") for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, Section):
        if isinstance(value, kind):
            return value
        if value is None or isinstance(value, Mapping):
            return kind.parse(value, path)
        raise ParamsError(path, f" must be a mapping with keys {', '.join(sorted(kind.keys()))}, got {value!r}")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is float and number:
        return float(value)
    fits = {bool: isinstance(value, bool), int: number and isinstance(value, int), str: isinstance(value, str)}
    if not fits.get(kind, False):
        raise _mismatch(value, kind, path)
    return value


def _shape_fits(value: Any, kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin is list:
        return isinstance(value, (list, tuple))
    if origin is dict or (isinstance(kind, type) and issubclass(kind, Section)):
        return isinstance(value, Mapping) or isinstance(value, kind if origin is None else dict)
    if kind is bool:
        return isinstance(value, bool)
    if kind in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _mismatch(value: Any, kind: Any, path: str) -> ParamsError:
    # PyYAML reads an exponent without a dot (1e-3) as a string.
    hint = "; YAML reads 1e-3 as a string, write 1.0e-3" if "float" in _describe(kind) and isinstance(value, str) \
        else ""
    return ParamsError(path, f" must be {_describe(kind)}, got {value!r}{hint}")
