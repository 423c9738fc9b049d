"""The params schema's one check: unknown and missing keys, types and rules, named by their dotted key."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from hushkit.config import ParamsError, TrainParams
from hushkit.config.schema import Section, above, at_least, nonempty, one_of, param, within
from hushkit.params import deep_merge


@dataclass(frozen=True)
class Inner(Section):
    low: float = 0.0
    high: float = param(1.0, rule=above(0))


@dataclass(frozen=True)
class Outer(Section):
    RENAMED = {"name": "names"}

    count: int = param(rule=at_least(1))
    names: list[str] = param(rule=nonempty())
    mode: str = param("fast", rule=one_of("fast", "slow"))
    share: float | None = param(None, rule=within(0.0, 1.0, open_high=True))
    inner: Inner = param(factory=Inner)
    weights: dict[str, float] = param(factory=dict)
    flag: bool = False


def parse(data: dict) -> Outer:
    return Outer.parse(data, "top.outer")


GOOD = {"count": 2, "names": ["a"]}


def test_a_good_mapping_is_read_with_defaults_and_ints_become_floats():
    outer = parse({**GOOD, "inner": {"low": 1}, "weights": {"x": 2}})
    assert outer == Outer(count=2, names=["a"], inner=Inner(low=1.0), weights={"x": 2.0})
    assert isinstance(outer.inner.low, float) and isinstance(outer.weights["x"], float)
    assert parse({**GOOD, "inner": None}).inner == Inner()  # null reads as an empty mapping: the defaults


@pytest.mark.parametrize("data, message", [
    ({**GOOD, "cuont": 3}, "top.outer: unknown key 'cuont'; known: count, flag, inner, mode, names, share, weights"),
    ({**GOOD, "a": 1, "b": 2}, "top.outer: unknown keys 'a', 'b'; known: "),
    ({**GOOD, "inner": {"hihg": 2.0}}, "top.outer.inner: unknown key 'hihg'; known: high, low"),
    ({"names": ["a"]}, "top.outer: missing key 'count'"),
    ({}, "top.outer: missing keys 'count', 'names'"),
    ({**GOOD, "count": "2"}, "top.outer.count must be an int, got '2'"),
    ({**GOOD, "count": 2.0}, "top.outer.count must be an int, got 2.0"),
    ({**GOOD, "count": True}, "top.outer.count must be an int, got True"),
    ({**GOOD, "flag": 1}, "top.outer.flag must be a boolean, got 1"),
    ({**GOOD, "share": "1e-3"}, "top.outer.share must be a float or null, got '1e-3'; YAML reads 1e-3 as a string"),
    ({**GOOD, "names": "a"}, "top.outer.names must be a list of strings, got 'a'"),
    ({**GOOD, "names": ["a", 3]}, "top.outer.names[1] must be a string, got 3"),
    ({**GOOD, "weights": {"x": "heavy"}}, "top.outer.weights.x must be a float, got 'heavy'"),
    ({**GOOD, "inner": 3}, "top.outer.inner must be a mapping with keys high, low, got 3"),
    ({**GOOD, "count": 0}, "top.outer.count must be >= 1, got 0"),
    ({**GOOD, "names": []}, "top.outer.names must not be empty, got []"),
    ({**GOOD, "mode": "quick"}, "top.outer.mode must be one of ['fast', 'slow'], got 'quick'"),
    ({**GOOD, "share": 1.0}, "top.outer.share must be in [0.0, 1.0), got 1.0"),
    ({**GOOD, "inner": {"high": -1}}, "top.outer.inner.high must be > 0, got -1.0"),
    ({"count": 1, "name": "a"}, "top.outer.name was replaced by top.outer.names: write names: [a]"),
])
def test_every_problem_is_one_message_naming_the_dotted_key_and_the_value(data, message):
    with pytest.raises(ParamsError) as info:
        parse(data)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_a_section_built_directly_is_checked_too():
    with pytest.raises(ParamsError, match=r"^count must be >= 1, got 0$"):
        Outer(count=0, names=["a"])
    with pytest.raises(ParamsError, match=r"^inner.high must be > 0, got 0.0$"):
        Outer(count=1, names=["a"], inner={"high": 0})
    assert Outer(count=1, names=["a"], inner={"low": 2}).inner == Inner(low=2.0)  # a mapping becomes its section


def test_a_mapping_is_required_at_the_top():
    with pytest.raises(ParamsError, match=r"^top.outer must be a mapping with keys count, flag, "):
        parse(["count", 2])


# --- train: one architecture's settings are train.common with train.models.<arch> merged over it ----------------

TRAIN = {"architectures": ["crced", "segan"],
         "common": {"epochs": 2, "batch_size": 4, "steps_per_epoch": 3, "lr": 0.01, "schedule": {"name": "step"}},
         "models": {"segan": {"lr": 0.001, "schedule": {"warmup_steps": 5}}, "crnn": {"epochs": 1}}}


def test_an_architecture_override_merges_over_common():
    train = TrainParams.parse(TRAIN, "train")
    segan, crced = train.config("segan"), train.config("crced")
    assert (segan.lr, segan.epochs, segan.schedule.name, segan.schedule.warmup_steps) == (0.001, 2, "step", 5)
    assert (crced.lr, crced.schedule.warmup_steps, crced.model) == (0.01, 0, "crced")
    assert train.config("crnn").epochs == 1  # settings of a model that is not listed are kept (and checked)


@pytest.mark.parametrize("overlay, message", [
    ({"models": {"segan": {"lrr": 1.0}}}, "train.models.segan: unknown key 'lrr'; known: adversarial, "),
    ({"models": {"crnn": {"epochs": "1"}}}, "train.models.crnn.epochs must be an int, got '1'"),
    ({"models": {"segan": {"schedule": {"warmup": 5}}}}, "train.models.segan.schedule: unknown key 'warmup'"),
    ({"common": {"schedule": {"name": "linear"}}}, "train.common.schedule.name must be one of "),
    ({"common": {"lrr": 1.0}}, "train.common: unknown key 'lrr'"),
    ({"common": {"ema_decay": 0.9}, "models": {"crced": {"swa": {"start_epoch": 2}}}},
     "train.models.crced.swa.start_epoch = 2 and ema_decay = 0.9 both average the weights"),
    ({"architectures": []}, "train.architectures must not be empty"),
])
def test_a_bad_setting_is_named_where_it_is_written(overlay, message):
    with pytest.raises(ParamsError) as info:
        TrainParams.parse(deep_merge(TRAIN, overlay), "train")
    assert str(info.value).startswith(message), str(info.value)


def test_a_key_no_mapping_sets_is_missing():
    common = {k: v for k, v in TRAIN["common"].items() if k != "lr"}
    with pytest.raises(ParamsError, match=r"^train.common: missing key 'lr'$"):
        TrainParams.parse({**TRAIN, "common": common}, "train")
