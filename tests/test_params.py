import pytest
import yaml

from hushkit.config import validate_params
from hushkit.models import available_models
from hushkit.params import architecture_params, deep_merge, load_params

TRAIN = {
    "architectures": ["crced", "segan"],
    "common": {"lr": 0.004, "epochs": 8, "loss": {"compressed_spectral": 1.0}, "schedule": {"name": "cosine"}},
    "models": {"segan": {"lr": 0.0005, "loss": {"waveform_l1": 1.0}, "schedule": {"warmup_steps": 10}}},
}


def test_architecture_settings_override_common_ones():
    segan = architecture_params(TRAIN, "segan", available_models())
    assert segan["lr"] == 0.0005 and segan["epochs"] == 8 and segan["model"] == "segan"
    assert segan["schedule"] == {"name": "cosine", "warmup_steps": 10}  # nested mappings merge
    assert segan["loss"] == {"compressed_spectral": 1.0, "waveform_l1": 1.0}
    crced = architecture_params(TRAIN, "crced", available_models())
    assert crced["lr"] == 0.004 and crced["model"] == "crced"
    assert TRAIN["common"]["lr"] == 0.004  # inputs untouched


def test_unlisted_architectures_are_refused():
    with pytest.raises(ValueError, match="does not list 'crnn'"):
        architecture_params(TRAIN, "crnn", available_models())


def test_settings_of_unlisted_models_may_stay_but_unknown_names_are_refused():
    # Training a subset is one edit of train.architectures: the others' settings stay for later.
    other = {**TRAIN, "models": {"densenet": {"lr": 1.0}}}
    assert architecture_params(other, "crced", available_models())["lr"] == 0.004
    with pytest.raises(ValueError, match=r"settings for \['densenett'\], which are not registered models"):
        architecture_params({**TRAIN, "models": {"densenett": {}}}, "crced", available_models())


def test_default_params_list_every_registered_model():
    from hushkit.models import available_models

    params = load_params()
    assert sorted(params["train"]["architectures"]) == available_models()
    for arch in params["train"]["architectures"]:
        architecture_params(params["train"], arch, available_models())


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
        items = [None]
        if "foreach" in stage:  # "${section.key}": the list the stage runs once per item of
            items = params
            for part in stage["foreach"].strip("${}").split("."):
                items = items[part]
        for item in items:
            for key in body.get("params", []):
                node = params
                for part in key.replace("${item}", str(item)).split("."):
                    assert isinstance(node, dict) and part in node, f"{name}: params.yaml has no {key!r}"
                    node = node[part]


# --- profiles written into params.yaml (`hushkit params --profile`, `make repro PROFILE=...`) -----------------------

def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", sorted(p.stem for p in (_root() / "profiles").glob("*.yaml")))
def test_a_profile_written_into_params_means_its_deep_merge_and_keeps_the_comments(profile, tmp_path):
    import yaml

    from hushkit.params import apply_profile

    root = _root()
    overlay = root / "profiles" / f"{profile}.yaml"
    text, changed = apply_profile(root / "params.yaml", overlay)
    assert yaml.safe_load(text) == deep_merge(load_params(root / "params.yaml"), yaml.safe_load(overlay.read_text()))
    assert text.startswith("# hushkit pipeline parameters") and "# speakers held out for test" in text
    assert changed and all("." in key for key in changed)
    applied = tmp_path / "params.yaml"
    applied.write_text(text)
    assert apply_profile(applied, overlay)[1] == []  # applying it again changes nothing


def test_params_command_writes_or_prints_the_profile(tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from hushkit.cli import app

    root = _root()
    shutil.copytree(root / "profiles", tmp_path / "profiles")
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    printed = runner.invoke(app, ["params", "--profile", "real-small", "-o", "-"])
    assert printed.exit_code == 0 and "sources: [local, \"synthetic:noise\"]" in printed.stdout
    assert "sources: [synthetic]" in (tmp_path / "params.yaml").read_text()  # printing left the file alone
    written = runner.invoke(app, ["params", "--profile", "real-small"])
    assert written.exit_code == 0 and "changed download.sources" in written.output
    assert load_params(tmp_path / "params.yaml")["download"]["sources"] == ["local", "synthetic:noise"]
    # what it prints fits the schema, and the real-small tagger learns the categories the denoisers never train on
    printed_params = validate_params(yaml.safe_load(printed.stdout))
    assert printed_params.tagging.clips.held_out == "learn"
    combined = runner.invoke(app, ["params", "--profile", "real-small,gpu", "-o", "-"])
    merged = yaml.safe_load(combined.stdout)
    assert combined.exit_code == 0 and merged["download"]["sources"] == ["local", "synthetic:noise"]
    assert merged["train"]["common"]["batch_size"] == 32  # the GPU overlay on top of the data profile
    missing = runner.invoke(app, ["params", "--profile", "real-small,nope", "-o", "-"])
    assert missing.exit_code == 2 and "nope" in missing.output
    missing = runner.invoke(app, ["params", "--profile", "nope"])
    assert missing.exit_code == 2 and "known: gpu, real-small, tiny" in missing.output
