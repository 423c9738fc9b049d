"""tag-predict: tag-summary's best tagger predicts the noise category of every test mixture of the tiny mix (not the
training or validation ones), the same bytes on a rerun; a summary without a best tagger is one line naming it."""
from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

from hushkit.io import read_table, write_json
from hushkit.models import build_model, save_checkpoint
from hushkit.stages import tag_predict
from hushkit.tagging.inference import load_tagger, predicted_categories

# the tiny corpus's labels as tag-features finds them, with the local source's unlabelled category among them
LABELS = ["babble", "hum", "uncategorized", "white", "speech"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def stage_inputs(tmp_path, tiny_params):
    """tag-summary's summary.json naming gcnn the best, an untrained gcnn and tagcnn (their scores straddle the
    labels, which is all the stage's mechanics need; tagcnn's labels are others, so using it would show), and the
    tiny params as a file."""
    torch.manual_seed(0)
    for arch, labels in (("gcnn", LABELS), ("tagcnn", ["fan", "rain", "speech"])):
        (tmp_path / "train" / arch).mkdir(parents=True)
        model = build_model(arch, labels=labels, channels=[8, 8], hidden=8).eval()
        save_checkpoint(tmp_path / "train" / arch / "model.pt", model)
    write_json(tmp_path / "summary" / "summary.json", {"best": "gcnn", "taggers": {}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    return tmp_path


def run_stage(root, mix_dir, out):
    tag_predict.main(["--params", str(root / "params.yaml"), "--summary", str(root / "summary"),
                      "--train", str(root / "train"), "--mix", str(mix_dir), "--out", str(out)])


def test_every_test_mixture_gets_the_best_taggers_category(stage_inputs, mix_dir, capsys):
    run_stage(stage_inputs, mix_dir, stage_inputs / "predicted")
    table = read_table(stage_inputs / "predicted" / "test.csv")
    assert list(table.columns) == ["id", "predicted_category", "probability", "tagger"]
    mixtures = read_table(mix_dir / "manifest.csv")
    test = mixtures[mixtures.split == "test"].sort_values("id")
    assert list(table.id) == list(test.id) and len(table) < len(mixtures)  # the test split only, by id
    assert set(table.tagger) == {"gcnn"}
    assert set(table.predicted_category) <= {"babble", "hum", "white"}  # never speech or uncategorized
    # gcnn's own predictions on the noisy files
    tagger = load_tagger(stage_inputs / "train" / "gcnn" / "model.pt")
    expected = predicted_categories(tagger, {row.id: mix_dir / row.noisy_path for row in test.itertuples()})
    assert list(table.predicted_category) == list(expected.predicted_category)
    assert table.probability.tolist() == pytest.approx(expected.probability.tolist(), abs=1e-6)
    assert "tag-predict: " + str(len(test)) + " test mixtures, categories predicted by gcnn: " in capsys.readouterr().out


def test_a_rerun_writes_the_same_bytes(stage_inputs, mix_dir):
    run_stage(stage_inputs, mix_dir, stage_inputs / "first")
    before = (stage_inputs / "first" / "test.csv").read_bytes()
    run_stage(stage_inputs, mix_dir, stage_inputs / "first")  # in place, as `dvc repro --force` does
    run_stage(stage_inputs, mix_dir, stage_inputs / "second")
    assert (stage_inputs / "first" / "test.csv").read_bytes() == before == (stage_inputs / "second" /
                                                                             "test.csv").read_bytes()
    assert sorted(p.name for p in (stage_inputs / "first").iterdir()) == ["test.csv"]


@pytest.mark.parametrize("record, problem", [
    ({"taggers": {}}, r"summary.json: no best tagger in it \(KeyError: 'best'\); rerun tag-summary"),
    ({"best": ""}, r"summary.json: best must name a tagger, got ''"),
    ({"best": "crnn"}, r"crnn/model.pt"),
])
def test_a_summary_without_a_usable_best_tagger_is_one_line(stage_inputs, mix_dir, capsys, record, problem):
    (stage_inputs / "summary" / "summary.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit) as exit_info:
        run_stage(stage_inputs, mix_dir, stage_inputs / "predicted")
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tag_predict: ")
    assert re.search(problem, lines[0]), lines[0]
    assert not (stage_inputs / "predicted").exists()
