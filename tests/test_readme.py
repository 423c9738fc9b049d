"""`hushkit readme-results`: the README's results block is the summary's leaderboard (main table and the ranking
metric's per-condition table), replaced between the markers only, idempotent, and a clear one-line error without a leaderboard."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hushkit.cli import app
from hushkit.evaluation.results import write_evaluation
from hushkit.readme import BEGIN, END, replace_block
from tests.evaluation.test_aggregate import per_file_table

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
KINDS = {"noisy": "input", "dsp": "baseline", "crnn": "model"}


@pytest.fixture(scope="module")
def leaderboard(tmp_path_factory) -> Path:
    """A leaderboard.md written by the same code as the summary stage's, with every test condition."""
    out = tmp_path_factory.mktemp("summary")
    per_file = per_file_table()
    per_file["condition"] = [("matched", "unseen_noise", "reverberant")[int(i[1:]) % 3] for i in per_file.id]
    write_evaluation(out, per_file, KINDS, mix=out, test=pd.DataFrame(columns=["id"]), examples={},
                     title="hushkit leaderboard (test split)", intro="40 test files, every system scored on the "
                     "same audio.")
    return out / "leaderboard.md"


def _readme(tmp_path: Path, block: str = "| placeholder |") -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(f"# hushkit\n\nintro\n\n## Results\n\n{BEGIN}\n{block}\n{END}\n\n## Layout\n\nafter\n")
    return readme


def _run(*args: str):
    return runner.invoke(app, ["readme-results", *args])


def test_the_block_becomes_the_leaderboard_and_nothing_else_changes(tmp_path, leaderboard):
    readme = _readme(tmp_path)
    result = _run("--readme", str(readme), "--leaderboard", str(leaderboard))
    assert result.exit_code == 0, result.output
    assert "updated from" in result.output
    text = readme.read_text()
    head, rest = text.split(BEGIN)
    block, tail = rest.split(END)
    assert head == "# hushkit\n\nintro\n\n## Results\n\n" and tail == "\n\n## Layout\n\nafter\n"
    board = leaderboard.read_text()
    assert "placeholder" not in block and "hushkit leaderboard (test split)" not in block  # the title stays out
    main_table = [line for line in board.splitlines() if line.startswith("|")][:5]  # header, rule, 3 systems
    assert "\n".join(main_table) in block
    assert "40 test files, every system scored on the same audio." in block
    assert "\n### By test condition: pesq\n" in block  # the ranking metric's table, one heading level down
    for metric in ("stoi", "si_sdr"):  # the others stay in the leaderboard, which the block names
        assert f"By test condition: {metric}" not in block
    assert "The other metrics by test condition: `data/summary/leaderboard.md`." in block
    assert "| system | kind | matched | unseen_noise | reverberant |" in block


def test_a_second_run_changes_nothing_and_check_tells_current_from_stale(tmp_path, leaderboard):
    readme = _readme(tmp_path)
    assert _run("--readme", str(readme), "--leaderboard", str(leaderboard)).exit_code == 0
    first = readme.read_bytes()
    result = _run("--readme", str(readme), "--leaderboard", str(leaderboard))
    assert result.exit_code == 0 and "already match" in result.output
    assert readme.read_bytes() == first
    assert _run("--readme", str(readme), "--leaderboard", str(leaderboard), "--check").exit_code == 0

    readme.write_text(first.decode().replace("| crnn | model |", "| crnn | model (edited by hand) |"))
    stale = readme.read_bytes()
    result = _run("--readme", str(readme), "--leaderboard", str(leaderboard), "--check")
    assert result.exit_code == 1 and "differ from" in result.output
    assert readme.read_bytes() == stale  # --check writes nothing


def test_no_leaderboard_is_one_line_naming_it_and_the_readme_is_kept(tmp_path):
    readme = _readme(tmp_path)
    before = readme.read_bytes()
    missing = tmp_path / "data" / "summary" / "leaderboard.md"
    result = _run("--readme", str(readme), "--leaderboard", str(missing))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"error: {missing}: no leaderboard; run the pipeline first (`make repro`" in result.output
    assert readme.read_bytes() == before


@pytest.mark.parametrize("markers, problem", [
    ("", "found 0 x"),
    (f"{BEGIN}\n{BEGIN}\n{END}\n", "found 2 x"),
    (f"{END}\nx\n{BEGIN}\n", "end marker comes before the begin marker"),
])
def test_missing_or_broken_markers_are_refused(tmp_path, leaderboard, markers, problem):
    readme = tmp_path / "README.md"
    readme.write_text(f"# hushkit\n{markers}")
    result = _run("--readme", str(readme), "--leaderboard", str(leaderboard))
    assert result.exit_code == 2 and problem in result.output and str(readme) in result.output
    assert readme.read_text() == f"# hushkit\n{markers}"


def test_a_file_that_is_not_a_leaderboard_is_refused(tmp_path):
    other = tmp_path / "leaderboard.md"
    other.write_text("some notes\n")
    result = _run("--readme", str(_readme(tmp_path)), "--leaderboard", str(other))
    assert result.exit_code == 2 and f"{other}: not a hushkit leaderboard" in result.output


def test_the_projects_readme_has_one_results_block():
    text = (ROOT / "README.md").read_text()
    assert "hushkit readme-results" in text.split(BEGIN)[0][-1500:]  # the command is named beside the table
    assert "| generated |" in replace_block(text, "| generated |")
