"""tag-summary: the taggers side by side from their tag-evaluate outputs, the best one by lwlrap made the registry's
`challenger`, the comparison logged to the pipeline's parent run, the plots as PNGs, the same bytes on a rerun; and
the summary stage's report gets the Tagging section exactly when tag-summary wrote one."""
from __future__ import annotations

import json
import shutil

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from hushkit import tracking
from hushkit.evaluation.report import write_report
from hushkit.io import sha256_file, write_json, write_table
from hushkit.registry import CHALLENGER, REGISTERED_TAGGER
from hushkit.stages import summary, tag_summary
from hushkit.stages.tag_evaluate import score
from hushkit.tagging.data import TaggingSplit
from hushkit.tagging.labels import LabelSet
from hushkit.tagging.summary import best_tagger, read_scores

LABELS = ("hum", "white", "siren", "speech")
QUALITY = {"tagcnn": 0.2, "gcnn": 0.6}  # how far each tagger's scores lean towards the truth
OUTPUTS = ("summary.json", "leaderboard.md", "per_class.png", "confusion.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_test_clips(clips: int = 24) -> TaggingSplit:
    """Curated clips (one noise alone) and noisy ones (speech with one or two noises)."""
    rng = np.random.default_rng(0)
    rows, subsets = [], []
    for i in range(clips):
        noisy = i % 2 == 1
        noises = rng.choice(3, size=1 + int(noisy and rng.random() < 0.5), replace=False)
        row = np.zeros(len(LABELS), np.float32)
        row[noises] = 1
        row[-1] = float(noisy)
        rows.append(row)
        subsets.append("noisy" if noisy else "curated")
    return TaggingSplit(np.zeros((clips, 8), np.float32), np.stack(rows), np.array(subsets))


def write_tag_evaluate(folder, arch: str, test: TaggingSplit) -> None:
    """What tag-evaluate@<arch> writes, for scores that lean towards the truth by QUALITY[arch]."""
    rng = np.random.default_rng(len(arch))
    scores = np.clip(QUALITY[arch] * test.targets + rng.uniform(0, 0.8, test.targets.shape), 0, 1)
    metrics, table, _ = score(test, scores, list(LABELS), resamples=200, seed=0)
    write_json(folder / "metrics.json", {k: round(float(v), 6) if isinstance(v, float) else v
                                         for k, v in metrics.items()})
    write_table(folder / "per_class.csv", table)
    labels = [LabelSet(LABELS).join([n for n, on in zip(LABELS, row) if on]) for row in test.targets]
    write_table(folder / "per_clip.csv", pd.concat([pd.DataFrame({
        "id": [f"test{i:04d}" for i in range(len(test))], "subset": test.subsets, "labels": labels}),
        pd.DataFrame(scores, columns=list(LABELS))], axis=1))


@pytest.fixture
def stage_inputs(tmp_path, mlflow_template_store, monkeypatch, tiny_params):
    """Both taggers trained, scored and exported (a registered version tagged with each checkpoint), in a sqlite
    store of their own."""
    from mlflow import MlflowClient

    shutil.copy(mlflow_template_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(REGISTERED_TAGGER)
    test = make_test_clips()
    versions = {}
    for arch in tiny_params["tagging"]["architectures"]:
        write_tag_evaluate(tmp_path / "evaluate" / arch, arch, test)
        write_json(tmp_path / "train" / arch / "metrics.json", {"n_params": 1000 + len(arch), "epochs": 1})
        checkpoint = tmp_path / "train" / arch / "model.pt"
        checkpoint.write_bytes(f"{arch} weights".encode())  # the stage only hashes it
        versions[arch] = client.create_model_version(
            REGISTERED_TAGGER, source=str(tmp_path / "export" / arch),
            tags={tracking.CHECKPOINT_TAG: sha256_file(checkpoint)}).version
    return {"root": tmp_path, "client": client, "versions": versions, "params": tiny_params}


def run_stage(inputs, out):
    root = inputs["root"]
    tag_summary.run(inputs["params"]["tagging"], evaluate=root / "evaluate", train=root / "train", out=out,
                    pipeline_params=inputs["params"])


def test_best_is_by_lwlrap_and_a_tie_goes_to_the_noisy_clips_then_to_the_first_listed():
    assert best_tagger({"a": {"lwlrap": 0.6, "lwlrap_noisy": 0.9}, "b": {"lwlrap": 0.7, "lwlrap_noisy": 0.1}}) == "b"
    assert best_tagger({"a": {"lwlrap": 0.7, "lwlrap_noisy": 0.5}, "b": {"lwlrap": 0.7, "lwlrap_noisy": 0.6}}) == "b"
    assert best_tagger({"a": {"lwlrap": 0.7, "lwlrap_noisy": 0.6}, "b": {"lwlrap": 0.7, "lwlrap_noisy": 0.6}}) == "a"
    assert best_tagger({"a": {"lwlrap": float("nan")}, "b": {"lwlrap": 0.1}}) == "b"


def test_the_taggers_must_have_been_scored_on_the_same_clips(tmp_path):
    for arch, clips in (("tagcnn", 24), ("gcnn", 20)):
        write_json(tmp_path / arch / "metrics.json", {"lwlrap": 0.5, "chance_lwlrap": 0.3, "clips": clips})
    with pytest.raises(ValueError, match="scored on different test clips"):
        read_scores(tmp_path, ["tagcnn", "gcnn"])
    with pytest.raises(FileNotFoundError, match=r"crnn/metrics.json: no such file; run tag-evaluate@crnn"):
        read_scores(tmp_path, ["tagcnn", "crnn"])


def test_tag_summary_compares_the_taggers_and_makes_the_best_the_challenger(stage_inputs):
    out = stage_inputs["root"] / "summary"
    run_stage(stage_inputs, out)
    record = json.loads((out / "summary.json").read_text())
    assert record["best"] == "gcnn" and record["rank_by"] == "lwlrap" and record["clips"]["all"] == 24
    for arch in ("tagcnn", "gcnn"):
        scored = json.loads((stage_inputs["root"] / "evaluate" / arch / "metrics.json").read_text())
        entry = record["taggers"][arch]
        for name, key in (("lwlrap", "lwlrap"), ("curated", "lwlrap_curated"), ("noisy", "lwlrap_noisy"),
                          ("mAP", "mAP")):
            assert entry[name]["mean"] == round(scored[key], 4)
            assert entry[name]["low"] <= entry[name]["mean"] <= entry[name]["high"], (arch, name)
        assert entry["n_params"] == 1000 + len(arch)
    assert 0 < record["chance"]["lwlrap"] < record["taggers"]["gcnn"]["lwlrap"]["mean"]
    board = (out / "leaderboard.md").read_text().splitlines()
    rows = [line for line in board if line.startswith("| ") and not line.startswith("| system")]
    assert [row.split(" | ")[0] for row in rows] == ["| gcnn", "| tagcnn", "| chance (random ranking)"]
    for name in ("per_class.png", "confusion.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        height, width, _ = matplotlib.image.imread(out / name).shape
        assert height > 100 and width > 100

    client = stage_inputs["client"]
    assert client.get_model_version_by_alias(REGISTERED_TAGGER, CHALLENGER).version == \
        stage_inputs["versions"]["gcnn"]
    parent = client.search_runs([client.get_experiment_by_name("hushkit").experiment_id],
                                f"tags.`{tracking.PIPELINE_TAG}` != ''")
    assert len(parent) == 1 and parent[0].data.tags["best_tagger"] == "gcnn"
    assert parent[0].data.metrics["gcnn.lwlrap"] == pytest.approx(record["taggers"]["gcnn"]["lwlrap"]["mean"])
    assert "tagging_summary/per_class.png" in [f.path for f in client.list_artifacts(
        parent[0].info.run_id, "tagging_summary")]


def test_tag_summary_writes_the_same_bytes_again(stage_inputs):
    first, second = stage_inputs["root"] / "first", stage_inputs["root"] / "second"
    run_stage(stage_inputs, first)
    before = {name: (first / name).read_bytes() for name in OUTPUTS}
    run_stage(stage_inputs, first)  # rerun in place, as `dvc repro --force` does
    run_stage(stage_inputs, second)  # and elsewhere: no path or time in the files
    for name in OUTPUTS:
        assert (first / name).read_bytes() == before[name] == (second / name).read_bytes(), name
    assert sorted(p.name for p in first.iterdir()) == sorted(OUTPUTS)  # no temporary file left behind


def test_the_report_has_a_tagging_section_only_when_tag_summary_wrote_one(stage_inputs, tmp_path):
    assert summary.tagging_parts(None) == [] and summary.tagging_parts(tmp_path / "nothing") == []
    out = stage_inputs["root"] / "summary"
    run_stage(stage_inputs, out)
    (part,) = summary.tagging_parts(out)
    assert [png.name for _, png in part.figures] == ["per_class.png", "confusion.png"]
    assert list(part.table.system) == ["gcnn", "tagcnn", "chance (random ranking)"]
    table = pd.DataFrame({"system": ["noisy"], "kind": ["input"], "pesq": [1.5]})
    write_report(tmp_path / "with.html", title="t", intro="i", table=table, plots=[], examples=[], parts=[part])
    write_report(tmp_path / "without.html", title="t", intro="i", table=table, plots=[], examples=[])
    page = (tmp_path / "with.html").read_text()
    section = page[page.index('<section class="part" id="tagging">'):]
    section = section[:section.index("</section>")]
    assert "<h2>Tagging</h2>" in section and '<table id="tagging-table">' in section
    assert section.count('<img src="data:image/png;base64,') == 2 and "gcnn" in section
    assert 'id="tagging"' not in (tmp_path / "without.html").read_text()


def test_the_summary_stage_reports_the_taggers_and_renders_without_them(stage_inputs, mix_dir):
    """summary.run end to end on one model and the noisy input (scores made up on the tiny mix's test files): with
    tag-summary's folder the report has the Tagging section; without one (no taggers) it has none."""
    from tests.stages.test_summary import scores

    root, params = stage_inputs["root"], json.loads(json.dumps(stage_inputs["params"]))
    params["train"]["architectures"], params["evaluate"]["baselines"] = ["crced"], ["noisy"]
    ids = list(pd.read_csv(mix_dir / "manifest.csv").query("split == 'test'").id[:6])
    for system, folder, gain in (("noisy", root / "baseline" / "noisy", 0.0),
                                 ("crced", root / "evaluate" / "crced", 0.5)):
        folder.mkdir(parents=True)
        scores(system, gain, ids).assign(condition="matched").to_csv(folder / "per_file.csv", index=False)
    write_json(root / "train" / "crced" / "metrics.json", {"n_params": 10})
    (root / "train" / "crced" / "model.pt").write_bytes(b"crced weights")
    run_stage(stage_inputs, root / "tagging")
    for tagging, out in ((root / "tagging", root / "with"), (None, root / "without")):
        summary.run(params["summary"], evaluate=root / "evaluate", train=root / "train", baseline=root / "baseline",
                    mix=mix_dir, out=out, pipeline_params=params, tagging=tagging)
    page = (root / "with" / "report.html").read_text()
    section = page[page.index('<section class="part" id="tagging">'):]
    assert section.count('<img src="data:image/png;base64,') == 2 and "<td>gcnn</td>" in section
    without = (root / "without" / "report.html").read_text()
    assert 'id="tagging"' not in without and "<h2>Leaderboard</h2>" in without
