"""write_evaluation's breakdown by a tagger's predicted noise category: per_file.csv's column, the CSV, the heat
map, the Markdown and report sections marked as predicted; without predictions, exactly the files it wrote before."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hushkit.evaluation.aggregate import SCORES
from hushkit.evaluation.results import write_evaluation

KINDS = {"noisy": "input", "dsp": "baseline", "crnn": "model"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# what an evaluation writes whether or not a tagger predicted the categories
COMMON = ("leaderboard.json", "by_snr.csv", "by_category.csv", "by_condition.csv", "leaderboard.png", "by_snr.png",
          "by_category.png", "by_condition.png")


def per_file_table(files: int = 24) -> pd.DataFrame:
    """Every system on the same files; crnn gains most on the files whose noise is (as the tagger will say) hum."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(files):
        for system, gain in (("noisy", 0.0), ("dsp", 0.3), ("crnn", 0.6)):
            boost = 0.5 if system == "crnn" and i % 3 == 0 else 0.0
            rows.append({"id": f"t{i:03d}", "system": system, "target_snr_db": float(5 * (i % 2)),
                         "noise_category": "uncategorized", "duration": 2.0,
                         "condition": ("matched", "unseen_noise")[i % 2],
                         **{m: 1.5 + gain + boost + rng.normal(0, 0.05) for m in SCORES}})
    return pd.DataFrame(rows)


def predictions(files: int = 24) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"t{i:03d}" for i in range(files)],
                         "predicted_category": ["hum" if i % 3 == 0 else ("fan", "rain")[i % 3 - 1]
                                                for i in range(files)],
                         "probability": np.linspace(0.4, 0.9, files)})


def evaluate(out, predicted=None, **kwargs):
    per_file = per_file_table()
    return write_evaluation(out, per_file, KINDS, mix=out, test=per_file[["id"]].drop_duplicates(), examples={},
                            title="t", intro="i", predicted=predicted, **kwargs)


def test_the_scores_are_broken_down_by_the_predicted_category_marked_as_predicted(tmp_path):
    evaluate(tmp_path / "with", predictions(), predicted_by="gcnn")
    out = tmp_path / "with"
    per_file = pd.read_csv(out / "per_file.csv")
    assert per_file.set_index(["system", "id"]).predicted_category[("crnn", "t003")] == "hum"
    by_predicted = pd.read_csv(out / "by_predicted_category.csv")
    assert set(by_predicted.predicted_category) == {"fan", "hum", "rain"}
    pesq = by_predicted.query("metric == 'pesq'").set_index(["system", "predicted_category"])
    assert pesq.loc[("crnn", "hum"), "n"] == 8
    assert pesq.loc[("crnn", "hum"), "mean"] > pesq.loc[("crnn", "fan"), "mean"] + 0.4  # crnn's hum boost
    assert (out / "by_predicted_category.png").read_bytes()[:8] == PNG_MAGIC
    heading = "By predicted noise category (predicted by gcnn, not labelled): pesq"
    board = (out / "leaderboard.md").read_text()
    assert f"## {heading}" in board and "| system | kind | fan | hum | rain |" in board
    crnn_row = board[board.index(heading):].split("| crnn | model | ")[1].splitlines()[0]
    assert crnn_row.count("[") == 3  # a "mean [low, high]" cell per predicted category
    report = (out / "report.html").read_text()
    assert f"<h2>{heading}</h2>" in report
    assert "predicted by gcnn, not labelled" in report.split("<h2>Plots</h2>")[1]  # the heat map's caption


def test_without_predictions_the_evaluation_is_unchanged(tmp_path):
    evaluate(tmp_path / "with", predictions(), predicted_by="gcnn")
    evaluate(tmp_path / "without")
    with_, without = tmp_path / "with", tmp_path / "without"
    assert sorted(p.name for p in with_.iterdir()) == sorted(
        [p.name for p in without.iterdir()] + ["by_predicted_category.csv", "by_predicted_category.png"])
    for name in COMMON:
        assert (with_ / name).read_bytes() == (without / name).read_bytes(), name
    assert "predicted_category" not in pd.read_csv(without / "per_file.csv").columns
    pd.testing.assert_frame_equal(pd.read_csv(with_ / "per_file.csv").drop(columns="predicted_category"),
                                  pd.read_csv(without / "per_file.csv"))
    board = (without / "leaderboard.md").read_text()
    assert "predicted" not in board and "predicted" not in (without / "report.html").read_text()
    # with predictions the leaderboard only gains its sections, after the per-condition ones
    assert (with_ / "leaderboard.md").read_text().startswith(board)


@pytest.mark.parametrize("spoil, problem", [
    (lambda table: table.iloc[1:], r"none for 1 scored file\(s\) \(t000\); they were predicted on other files"),
    (lambda table: pd.concat([table, table.iloc[:1]]), r"1 file\(s\) predicted twice: t000"),
    (lambda table: table.drop(columns="predicted_category"), r"no column \['predicted_category'\]"),
])
def test_predictions_that_do_not_match_the_scored_files_are_refused(tmp_path, spoil, problem):
    with pytest.raises(ValueError, match=problem):
        evaluate(tmp_path / "out", spoil(predictions()), predicted_by="gcnn")
    assert not (tmp_path / "out").exists()  # refused before anything is written
