import pytest
import yaml

from hushkit.params import deep_merge, load_params
from hushkit.stages import download
from hushkit.stages._cli import stage_main
from tests.conftest import ROOT


def write_params(tmp_path, overlay: dict):
    """The project's params.yaml with `overlay` merged in, as a file."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(deep_merge(load_params(ROOT / "params.yaml"), overlay)))
    return params


def test_stage_failure_is_one_line_naming_the_problem(tmp_path, capsys):
    params = write_params(tmp_path, {"download": {"sources": ["nowhere"]}})
    with pytest.raises(SystemExit) as exit_info:
        stage_main("download", download.run, ["--params", str(params), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "download: params download.sources: unknown source 'nowhere'; available: synthetic, local, ")


@pytest.mark.parametrize("overlay, message", [
    ({"train": {"models": {"crnn": {"lrr": 0.1}}}}, "train.models.crnn: unknown key 'lrr'; known: adversarial, "),
    ({"train": {"common": {"schedule": {"name": "linear"}}}}, "train.common.schedule.name must be one of "),
    ({"mix": {"snr_db": {"low": 30.0}}}, "mix.snr_db.low must not exceed high (25.0), got 30.0"),
    ({"evaluate": {"max_files": "all"}}, "evaluate.max_files must be an int or null, got 'all'"),
    ({"schedule": {"crn": "0 3 * * 1"}}, "schedule: unknown key 'crn'; known: cron, "),
    ({"evalute": {"max_files": 3}}, "unknown key 'evalute'; known: download, evaluate, "),
])
def test_a_typo_anywhere_in_the_params_fails_every_stage_before_any_work(tmp_path, capsys, overlay, message):
    params = write_params(tmp_path, overlay)
    with pytest.raises(SystemExit) as exit_info:
        stage_main("download", download.run, ["--params", str(params), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"download: {params}: {message}"), err
    assert not (tmp_path / "out").exists()


def test_missing_path_option_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        stage_main("download", download.run, ["--params", str(tmp_path / "p.yaml")])
    assert exit_info.value.code == 2


def test_options_are_paths_unless_annotated_str_and_star_passes_every_section(tmp_path):
    from pathlib import Path

    seen = {}

    def run(params: dict, *, name: str, out: Path, everything: dict) -> None:
        seen.update(params=params, name=name, out=out, everything=everything)

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"export": {"opset": 17, "atol": 0.001}, "summary": {"rank_by": "stoi"}}))
    stage_main("export", run, ["--params", str(params), "--name", "crced", "--out", "o"], sections={"everything": "*"})
    assert seen["name"] == "crced" and isinstance(seen["name"], str)
    assert seen["out"] == Path("o")
    assert seen["params"] == {"opset": 17, "atol": 0.001}
    assert seen["everything"] == {"export": {"opset": 17, "atol": 0.001}, "summary": {"rank_by": "stoi"}}
