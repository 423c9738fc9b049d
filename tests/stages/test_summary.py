import json

import pandas as pd
import pytest

from hushkit.stages.summary import best_architecture, leaderboard, plot, to_markdown


@pytest.fixture
def stage_outputs(tmp_path):
    noisy = {"pesq": 1.4, "stoi": 0.9, "estoi": 0.75, "si_sdr": 9.0}
    results = {"crced": {"pesq": 1.7, "stoi": 0.91, "estoi": 0.8, "si_sdr": 12.0},
               "segan": {"pesq": 1.6, "stoi": 0.92, "estoi": 0.79, "si_sdr": 13.0}}
    for version, (arch, scores) in enumerate(results.items(), start=1):
        for stage, content in [
            ("evaluate", {"noisy": noisy, arch: scores, "files": 10,
                          "improvement": {k: scores[k] - noisy[k] for k in scores}}),
            ("train", {"n_params": 1000 * version, "gmacs_per_second": 0.1, "train_seconds": 60.0}),
            ("export", {"registry": {"version": str(version)}}),
        ]:
            path = tmp_path / stage / arch / ("export.json" if stage == "export" else "metrics.json")
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(content))
    return tmp_path


def test_leaderboard_has_noisy_and_every_architecture(stage_outputs):
    board = leaderboard(stage_outputs / "evaluate", stage_outputs / "train", stage_outputs / "export",
                        ["crced", "segan"])
    assert list(board.system) == ["noisy", "crced", "segan"]
    row = board.set_index("system").loc["segan"]
    assert row.delta_si_sdr == pytest.approx(4.0) and row.registry_version == "2"


def test_best_follows_the_ranking_metric(stage_outputs):
    board = leaderboard(stage_outputs / "evaluate", stage_outputs / "train", stage_outputs / "export",
                        ["crced", "segan"])
    assert best_architecture(board, "pesq") == "crced"
    assert best_architecture(board, "si_sdr") == "segan"
    with pytest.raises(ValueError, match="rank_by"):
        best_architecture(board, "accuracy")


def test_markdown_and_plot(stage_outputs, tmp_path):
    board = leaderboard(stage_outputs / "evaluate", stage_outputs / "train", stage_outputs / "export",
                        ["crced", "segan"])
    text = to_markdown(board, "crced", "pesq")
    assert "| **crced** |" in text and "| noisy |" in text
    plot(board, tmp_path / "board.png")
    assert (tmp_path / "board.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_architecture_results_name_the_file(stage_outputs):
    with pytest.raises(FileNotFoundError, match="crnn"):
        leaderboard(stage_outputs / "evaluate", stage_outputs / "train", stage_outputs / "export", ["crnn"])


@pytest.mark.parametrize("value, text", [(6341.0, "6341"), (1092417.0, "1092417"), (1.5786, "1.579"),
                                         (3.0, "3.000"), (float("nan"), ""), ("segan", "segan")])
def test_markdown_cells_show_counts_whole_and_scores_to_three_decimals(value, text):
    from hushkit.stages.summary import _cell

    assert _cell(value) == text
