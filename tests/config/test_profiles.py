"""params.yaml, and params.yaml with each profile (and each data profile with the GPU overlay) applied as
`hushkit params --profile` writes it, fit the schema: every section and every architecture's settings."""
from __future__ import annotations

import pytest
import yaml

from hushkit.config import ParamsError, validate_params
from hushkit.params import apply_profile, load_params
from tests.conftest import ROOT

PROFILES = sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml"))
DATA_PROFILES = [name for name in PROFILES if name != "gpu"]


def applied(profile: str | None) -> dict:
    if profile is None:
        return load_params(ROOT / "params.yaml")
    text, changed = apply_profile(ROOT / "params.yaml", profile)
    assert changed, f"profile {profile} changes nothing"
    return yaml.safe_load(text)


@pytest.mark.parametrize("profile", [None, *PROFILES, *(f"{name},gpu" for name in DATA_PROFILES)])
def test_params_and_every_profile_fit_the_schema(profile, monkeypatch):
    monkeypatch.chdir(ROOT)  # profile names resolve under the repo's profiles/
    params = applied(profile)
    checked = validate_params(params)
    assert {name for name in params} == {name for name in checked.keys() if getattr(checked, name) is not None}
    for arch in {*checked.train.architectures, *checked.train.models}:
        assert checked.train.config(arch).model == arch


def test_a_typo_in_a_profile_is_named_by_its_dotted_key():
    params = load_params(ROOT / "params.yaml")
    params["train"]["models"]["crnn"]["epohcs"] = 3
    with pytest.raises(ParamsError, match=r"^train\.models\.crnn: unknown key 'epohcs'; known: adversarial, "):
        validate_params(params)
