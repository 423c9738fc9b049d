"""The `tagging` section's clip params: `tagging.clips.held_out` (skip by default, or learn)."""
from __future__ import annotations

import pytest

from hushkit.config import ClipParams, ParamsError, validate_params
from hushkit.params import load_params
from tests.conftest import ROOT


def test_held_out_is_skip_by_default_and_may_be_learn():
    assert ClipParams.parse({}, "tagging.clips").held_out == "skip"
    assert ClipParams.parse({"held_out": "learn"}, "tagging.clips").held_out == "learn"
    assert validate_params(load_params(ROOT / "params.yaml")).tagging.clips.held_out == "skip"


@pytest.mark.parametrize("value, message", [
    ("keep", "tagging.clips.held_out must be one of ['skip', 'learn'], got 'keep'"),
    (True, "tagging.clips.held_out must be a string, got True"),
    (None, "tagging.clips.held_out must be a string, got None"),
])
def test_a_bad_held_out_is_one_line_naming_the_key_and_the_choices(value, message):
    params = load_params(ROOT / "params.yaml")
    params["tagging"]["clips"]["held_out"] = value
    with pytest.raises(ParamsError) as info:
        validate_params(params)
    assert str(info.value) == message
