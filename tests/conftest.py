"""Shared fixtures: the tiny profile and the pipeline's stage outputs on it, built once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hushkit.params import deep_merge, load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    overlay = yaml.safe_load((ROOT / "profiles" / "tiny.yaml").read_text())
    return deep_merge(load_params(ROOT / "params.yaml"), overlay)


@pytest.fixture(scope="session")
def corpus_dir(tiny_params, tmp_path_factory) -> Path:
    from hushkit.stages import download

    out = tmp_path_factory.mktemp("pipeline") / "corpus"
    download.run(tiny_params["download"], out=out)
    return out


@pytest.fixture(scope="session")
def mix_dir(tiny_params, corpus_dir) -> Path:
    from hushkit.stages import mix

    out = corpus_dir.parent / "mix"
    mix.run(tiny_params["mix"], corpus=corpus_dir, out=out)
    return out


@pytest.fixture(scope="session")
def features_dir(tiny_params, mix_dir) -> Path:
    from hushkit.stages import features

    out = mix_dir.parent / "features"
    features.run(tiny_params["features"], mix=mix_dir, out=out, mix_params=tiny_params["mix"])
    return out
