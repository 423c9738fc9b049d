import pytest

from hushkit.params import architecture_params, deep_merge, load_params

TRAIN = {
    "architectures": ["crced", "segan"],
    "common": {"lr": 0.004, "epochs": 8, "loss": {"compressed_spectral": 1.0}, "schedule": {"name": "cosine"}},
    "models": {"segan": {"lr": 0.0005, "loss": {"waveform_l1": 1.0}, "schedule": {"warmup_steps": 10}}},
}


def test_architecture_settings_override_common_ones():
    segan = architecture_params(TRAIN, "segan")
    assert segan["lr"] == 0.0005 and segan["epochs"] == 8 and segan["model"] == "segan"
    assert segan["schedule"] == {"name": "cosine", "warmup_steps": 10}  # nested mappings merge
    assert segan["loss"] == {"compressed_spectral": 1.0, "waveform_l1": 1.0}
    crced = architecture_params(TRAIN, "crced")
    assert crced["lr"] == 0.004 and crced["model"] == "crced"
    assert TRAIN["common"]["lr"] == 0.004  # inputs untouched


def test_unlisted_architectures_are_refused():
    with pytest.raises(ValueError, match="does not list 'crnn'"):
        architecture_params(TRAIN, "crnn")


def test_settings_of_unlisted_models_may_stay_but_unknown_names_are_refused():
    # Training a subset is one edit of train.architectures: the others' settings stay for later.
    assert architecture_params({**TRAIN, "models": {"densenet": {"lr": 1.0}}}, "crced")["lr"] == 0.004
    with pytest.raises(ValueError, match=r"settings for \['densenett'\], which are not registered models"):
        architecture_params({**TRAIN, "models": {"densenett": {}}}, "crced")


def test_default_params_list_every_registered_model():
    from hushkit.models import available_models

    params = load_params()
    assert sorted(params["train"]["architectures"]) == available_models()
    for arch in params["train"]["architectures"]:
        architecture_params(params["train"], arch)


def test_deep_merge_replaces_leaves_and_merges_mappings():
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": 3}, "d": [2]}) == {"a": {"b": 3, "c": 2}, "d": [2]}


def test_every_param_dvc_yaml_tracks_exists():
    """dvc repro refuses a stage whose params are missing; catch it here, before a long run."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    params = load_params(root / "params.yaml")
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        items = params["train"]["architectures"] if "foreach" in stage else [None]
        for item in items:
            for key in body.get("params", []):
                node = params
                for part in key.replace("${item}", str(item)).split("."):
                    assert isinstance(node, dict) and part in node, f"{name}: params.yaml has no {key!r}"
                    node = node[part]
