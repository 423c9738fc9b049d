import pytest
import yaml

from hushkit.stages import download
from hushkit.stages._cli import stage_main


def test_stage_failure_is_one_line_naming_the_problem(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"download": {"sources": ["nowhere"]}}))
    with pytest.raises(SystemExit) as exit_info:
        stage_main("download", download.run, ["--params", str(params), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "download: params download.sources: unknown source 'nowhere'; available: synthetic, local, ")


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
    params.write_text(yaml.safe_dump({"mine": {"x": 1}, "other": {"y": 2}}))
    stage_main("mine", run, ["--params", str(params), "--name", "crced", "--out", "o"], sections={"everything": "*"})
    assert seen["name"] == "crced" and isinstance(seen["name"], str)
    assert seen["out"] == Path("o")
    assert seen["params"] == {"x": 1} and seen["everything"] == {"mine": {"x": 1}, "other": {"y": 2}}
