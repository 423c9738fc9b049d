import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from hushkit import tracking
from hushkit.evaluation.aggregate import SCORES, weighted_means
from hushkit.stages import summary as summary_stage
from hushkit.stages.summary import best_architecture, collect, model_details, timing_table, write_timing_table
from hushkit.timing import write_timing

SYSTEMS = {"noisy": 0.0, "dsp": 0.2, "crced": 0.5, "segan": 0.4}


def scores(system, gain, ids):
    rng = np.random.default_rng(len(system))
    return pd.DataFrame([{"id": i, "system": system, "target_snr_db": 0.0, "noise_category": "hum",
                          "duration": 2.0, **{m: 1.5 + gain + rng.normal(0, 0.05) for m in SCORES}}
                         for i in ids])


@pytest.fixture
def stage_outputs(tmp_path):
    ids = [f"t{i}" for i in range(6)]
    for system, gain in SYSTEMS.items():
        model = system in ("crced", "segan")
        folder = tmp_path / ("evaluate" if model else "baseline") / system
        folder.mkdir(parents=True)
        table = scores(system, gain, ids)
        # an evaluate@<arch> table holds the noisy rows too: collect must take the architecture's own
        (pd.concat([scores("noisy", 0.0, ids), table]) if model else table).to_csv(folder / "per_file.csv", index=False)
        if system != "dsp":  # dsp restored by DVC: no timing file
            write_timing(folder, {"rtf": 0.01 * (1 + gain)})
    for version, arch in enumerate(("crced", "segan"), start=1):
        (tmp_path / "train" / arch).mkdir(parents=True)
        (tmp_path / "train" / arch / "metrics.json").write_text(json.dumps({"n_params": 1000 * version}))
        write_timing(tmp_path / "train" / arch, {"train_seconds": 60.0 * version})
    return tmp_path


def test_collect_takes_every_system_once_in_display_order(stage_outputs):
    per_file, kinds, folders = collect(stage_outputs / "evaluate", stage_outputs / "baseline", ["crced", "segan"],
                                       ["noisy", "dsp"])
    assert kinds == {"noisy": "input", "dsp": "baseline", "crced": "model", "segan": "model"}
    assert per_file.groupby("system").size().to_dict() == {s: 6 for s in SYSTEMS}
    assert folders["crced"] == stage_outputs / "evaluate" / "crced" / "examples" and "noisy" not in folders


def test_collect_refuses_systems_scored_on_different_files(stage_outputs):
    path = stage_outputs / "baseline" / "dsp" / "per_file.csv"
    pd.read_csv(path).head(3).to_csv(path, index=False)
    with pytest.raises(ValueError, match="different test files"):
        collect(stage_outputs / "evaluate", stage_outputs / "baseline", ["crced", "segan"], ["noisy", "dsp"])


def test_best_is_a_model_chosen_by_the_ranking_metric(stage_outputs):
    per_file, kinds, _ = collect(stage_outputs / "evaluate", stage_outputs / "baseline", ["crced", "segan"],
                                 ["noisy", "dsp"])
    scores = weighted_means(per_file, None)
    assert best_architecture(scores, kinds, "pesq") == "crced"
    with pytest.raises(ValueError, match="rank_by"):
        best_architecture(scores, kinds, "accuracy")


def test_weighing_the_conditions_ranks_the_model_that_generalises():
    """segan fits the matched noise best, crced holds up on unseen noise and reverberation: pooled over the files
    (mostly matched) segan wins, the mean over conditions picks crced."""
    gains = {"noisy": (0.0, 0.0), "segan": (0.6, 0.0), "crced": (0.4, 0.4)}  # (matched, other conditions)
    rows = []
    for system, (matched, other) in gains.items():
        for condition, count in (("matched", 8), ("unseen_noise", 2), ("reverberant", 2)):
            gain = matched if condition == "matched" else other
            rows += [{"id": f"{condition}{i}", "system": system, "condition": condition,
                      **{m: 1.5 + gain for m in SCORES}} for i in range(count)]
    per_file = pd.DataFrame(rows)
    kinds = {"noisy": "input", "segan": "model", "crced": "model"}
    assert best_architecture(weighted_means(per_file, None), kinds, "pesq") == "segan"
    weights = {"matched": 1.0, "unseen_noise": 1.0, "reverberant": 1.0}
    assert best_architecture(weighted_means(per_file, weights), kinds, "pesq") == "crced"
    assert weighted_means(per_file, weights).loc["segan", "pesq"] == pytest.approx(1.5 + 0.6 / 3)


def test_model_details_and_missing_results_name_the_file(stage_outputs):
    details = model_details(stage_outputs / "train", ["crced", "segan"])
    assert details.set_index("system").n_params.to_dict() == {"crced": 1000, "segan": 2000}
    with pytest.raises(FileNotFoundError, match="crnn"):
        model_details(stage_outputs / "train", ["crnn"])


def test_timings_come_from_the_stages_timing_files(stage_outputs, tmp_path):
    kinds = {"noisy": "input", "dsp": "baseline", "crced": "model", "segan": "model"}
    timing = timing_table(stage_outputs / "evaluate", stage_outputs / "baseline", stage_outputs / "train", kinds)
    rows = timing.set_index("system")
    assert rows.rtf.to_dict() == pytest.approx({"noisy": 0.01, "dsp": np.nan, "crced": 0.015, "segan": 0.014},
                                               nan_ok=True)
    assert rows.train_seconds.to_dict() == pytest.approx({"noisy": np.nan, "dsp": np.nan, "crced": 60.0,
                                                          "segan": 120.0}, nan_ok=True)
    write_timing_table(tmp_path, timing)
    assert "| crced | model | 0.0150 | 60 |" in (tmp_path / "timing.md").read_text()
    assert "| dsp | baseline |  |  |" in (tmp_path / "timing.md").read_text()


@pytest.fixture
def pipeline_outputs(tmp_path, tiny_params, mix_dir, mlflow_template_store, monkeypatch):
    """Made-up scores of the noisy input and one model on six of the tiny mix's test files, what train@crced
    leaves, tag-predict's test.csv (hum for the files crced does best on), an MLflow store of their own and the
    params (crced the only architecture, noisy the only baseline) as a file."""
    shutil.copy(mlflow_template_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    params = json.loads(json.dumps(tiny_params))
    params["train"]["architectures"], params["evaluate"]["baselines"] = ["crced"], ["noisy"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    test = pd.read_csv(mix_dir / "manifest.csv").query("split == 'test'").sort_values("id")
    ids = list(test.id[:6])
    for system, folder, gain in (("noisy", tmp_path / "baseline" / "noisy", 0.0),
                                 ("crced", tmp_path / "evaluate" / "crced", 0.5)):
        folder.mkdir(parents=True)
        table = scores(system, gain, ids).assign(condition="matched")
        if system == "crced":  # a full point better on the first three files
            table.loc[table.id.isin(ids[:3]), list(SCORES)] += 1.0
        table.to_csv(folder / "per_file.csv", index=False)
    (tmp_path / "train" / "crced").mkdir(parents=True)
    (tmp_path / "train" / "crced" / "metrics.json").write_text(json.dumps({"n_params": 10}))
    (tmp_path / "train" / "crced" / "model.pt").write_bytes(b"crced weights")
    (tmp_path / "predicted").mkdir()
    pd.DataFrame({"id": list(test.id), "predicted_category": ["hum" if i in ids[:3] else "white" for i in test.id],
                  "probability": 0.7, "tagger": "gcnn"}).to_csv(tmp_path / "predicted" / "test.csv", index=False)
    return tmp_path


def run_summary(root, mix_dir, out, *extra):
    summary_stage.main(["--params", str(root / "params.yaml"), "--evaluate", str(root / "evaluate"), "--train",
                        str(root / "train"), "--baseline", str(root / "baseline"), "--mix", str(mix_dir),
                        "--out", str(out), *extra])


def test_the_summary_breaks_the_scores_down_by_tag_predicts_categories(pipeline_outputs, mix_dir):
    root = pipeline_outputs
    run_summary(root, mix_dir, root / "with", "--predicted", str(root / "predicted" / "test.csv"))
    by_predicted = pd.read_csv(root / "with" / "by_predicted_category.csv").query("metric == 'pesq'")
    means = by_predicted.set_index(["system", "predicted_category"])["mean"]
    assert means[("crced", "hum")] > means[("crced", "white")] + 0.9  # crced's better files, as predicted
    assert set(by_predicted.n) == {3}
    assert (root / "with" / "by_predicted_category.png").read_bytes()[:4] == b"\x89PNG"
    heading = "By predicted noise category (predicted by gcnn, not labelled): pesq"
    assert f"## {heading}" in (root / "with" / "leaderboard.md").read_text()
    assert f"<h2>{heading}</h2>" in (root / "with" / "report.html").read_text()
    assert set(pd.read_csv(root / "with" / "per_file.csv").predicted_category) == {"hum", "white"}
    # without tag-predict's file (a pipeline without taggers) the summary is as it was: no breakdown
    run_summary(root, mix_dir, root / "without", "--predicted", str(root / "predicted" / "missing.csv"))
    assert not (root / "without" / "by_predicted_category.csv").exists()
    assert "predicted" not in (root / "without" / "leaderboard.md").read_text()
    for name in ("leaderboard.json", "by_category.csv", "summary.json"):
        assert (root / "with" / name).read_bytes() == (root / "without" / name).read_bytes(), name


def test_a_predictions_file_without_its_columns_is_one_line_naming_it(pipeline_outputs, mix_dir, capsys):
    root = pipeline_outputs
    path = root / "predicted" / "test.csv"
    pd.read_csv(path).drop(columns="tagger").to_csv(path, index=False)
    with pytest.raises(SystemExit):
        run_summary(root, mix_dir, root / "out", "--predicted", str(path))
    assert capsys.readouterr().err.strip() == f"summary: {path}: lacks the columns ['tagger']; rerun tag-predict"
