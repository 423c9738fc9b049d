"""The tagging stages on the tiny profile: tag-features' clips and checks, tag-train@<arch>'s checkpoint and run,
tag-evaluate@<arch>'s scores (the metrics themselves are tested in tests/tagging)."""
from __future__ import annotations

import copy
import hashlib
import json
import shutil

import numpy as np
import pytest

from hushkit import tracking
from hushkit.config.data import UNCATEGORIZED, UNSEEN
from hushkit.io import read_table, write_table
from hushkit.models import build_model, load_checkpoint, save_checkpoint
from hushkit.stages import tag_evaluate, tag_features, tag_train
from hushkit.tagging.clips import COLUMNS
from hushkit.tagging.labels import LabelSet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tagging_dir(tiny_params, mix_dir, corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tagging") / "features"
    tag_features.run(tiny_params["tagging"], mix=mix_dir, corpus=corpus_dir, out=out)
    return out


def test_tag_features_writes_the_clips_of_every_split(tiny_params, tagging_dir, mix_dir):
    labels = json.loads((tagging_dir / "labels.json").read_text())
    # the tiny corpus's categories but siren, which the unseen-noise condition holds out of training
    assert labels == {"labels": ["babble", "hum", "white", "speech"], "held_out": ["siren"]}
    clips = tiny_params["tagging"]["clips"]
    summary = json.loads((tagging_dir / "summary.json").read_text())
    length = int(clips["seconds"] * summary["sample_rate"])
    for split in ("train", "val", "test"):
        table = read_table(tagging_dir / split / "clips.csv")
        waveforms, targets = (np.load(tagging_dir / split / f"{name}.npy") for name in ("waveforms", "targets"))
        expected = {"curated": 3 * clips["curated_per_category"][split], "noisy": clips["noisy"][split]}
        assert table.subset.value_counts().to_dict() == expected == summary["clips"][split]
        assert waveforms.shape == (len(table), length) and waveforms.dtype == np.float32
        np.testing.assert_array_equal(targets, LabelSet(tuple(labels["labels"])).targets(table.labels))
    pools = read_table(mix_dir / "pools.csv")
    split_of = dict(zip(pools.path, pools.split))
    for split in ("train", "val", "test"):
        table = read_table(tagging_dir / split / "clips.csv")
        files = [p for column in ("speech_path", "noise_paths") for value in table[column].dropna()
                 for p in str(value).split(";")]
        assert {split_of[f] for f in files} == {split}  # the mix stage's splits: no file crosses
    assert (tagging_dir / "checks" / "clips.json").is_file() and (tagging_dir / "checks" / "arrays.json").is_file()


# sha256 of each split's clip plan (clips.csv but the realized SNR, whose last digits are the platform's float
# arithmetic) on the tiny profile, computed before tagging.clips.held_out and the unnamed-noise rule existed.
PLAN_SHA256 = {"train": "bc52141846a3c66e06716f1a0089374fbca2257e647b8af5550e479c488bafb0",
               "val": "f69dadc650f04ac7c598abf2a140e020a4ac44b9e66d99c98d7822b5dfd9c91d",
               "test": "af788c4b9f1e8488d996f24cfce8ce5efb2369ef2fb948cfcefce81572ee710a"}


def test_held_out_skip_keeps_the_clips_as_they_were(tiny_params, tagging_dir):
    assert tiny_params["tagging"]["clips"]["held_out"] == "skip"
    for split, expected in PLAN_SHA256.items():
        plan = read_table(tagging_dir / split / "clips.csv")[COLUMNS]
        assert hashlib.sha256(plan.to_csv(index=False).encode()).hexdigest() == expected, split


def with_clips(tiny_params: dict, **clips) -> dict:
    section = copy.deepcopy(tiny_params["tagging"])
    section["clips"].update(clips)
    return section


def test_held_out_learn_labels_the_held_out_category_from_its_own_instances(tiny_params, mix_dir, corpus_dir,
                                                                            tmp_path):
    out = tmp_path / "features"
    tag_features.run(with_clips(tiny_params, held_out="learn"), mix=mix_dir, corpus=corpus_dir, out=out)
    labels = json.loads((out / "labels.json").read_text())
    assert labels == {"labels": ["babble", "hum", "siren", "white", "speech"], "held_out": ["siren"],
                      "learned_held_out": True}
    pools = read_table(mix_dir / "pools.csv")
    unseen = set(pools.path[pools.split == UNSEEN])
    siren = {}
    for split in ("train", "val", "test"):
        table = read_table(out / split / "clips.csv")
        files = {p for value in table.noise_paths for p in value.split(";")}
        siren[split] = files & unseen
        assert "siren" in set(table.labels[table.subset == "curated"])
        targets = np.load(out / split / "targets.npy")
        np.testing.assert_array_equal(targets, LabelSet(tuple(labels["labels"])).targets(table.labels))
    # the tiny profile's three siren instances: one for each of the tagger's splits
    assert all(len(files) == 1 for files in siren.values()) and len(set().union(*siren.values())) == 3


@pytest.fixture(scope="module")
def unnamed_mix_dir(mix_dir, tmp_path_factory):
    """The tiny mix stage's pools.csv with every noise file unnamed (a `local` noise folder without sub-folders)
    and none held out."""
    out = tmp_path_factory.mktemp("unnamed-mix")
    pools = read_table(mix_dir / "pools.csv")
    noise = pools.kind == "noise"
    pools.loc[noise, "category"] = UNCATEGORIZED
    pools.loc[noise & (pools.split == UNSEEN), "split"] = "train"
    write_table(out / "pools.csv", pools)
    return out


def test_a_corpus_of_unnamed_noise_alone_gives_a_speech_tagger(tiny_params, unnamed_mix_dir, corpus_dir,
                                                               mlflow_store, tmp_path):
    features = tmp_path / "features"
    tag_features.run(tiny_params["tagging"], mix=unnamed_mix_dir, corpus=corpus_dir, out=features)
    assert json.loads((features / "labels.json").read_text()) == {
        "labels": ["speech"], "held_out": [], "unlabelled": [UNCATEGORIZED]}
    test = read_table(features / "test" / "clips.csv")
    assert set(zip(test.subset, test.labels.fillna(""))) == {("curated", ""), ("noisy", "speech")}
    section = tiny_params["tagging"]
    tag_train.run(section, arch="tagcnn", features=features, out=tmp_path / "train", params=tiny_params)
    tag_evaluate.run(section, arch="tagcnn", features=features, model=tmp_path / "train" / "model.pt",
                     out=tmp_path / "evaluate", mlflow_params=tiny_params["mlflow"])
    scores = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    # one label ranks first in every clip: lwlrap says nothing (1, as its chance level); mAP is speech detection
    assert scores["lwlrap"] == scores["chance_lwlrap"] == 1.0 and 0.0 < scores["mAP"] <= 1.0


def test_tag_features_without_the_mix_stages_pools_names_the_file(tiny_params, corpus_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pools.csv: no such file"):
        tag_features.run(tiny_params["tagging"], mix=tmp_path, corpus=corpus_dir, out=tmp_path / "out")


@pytest.fixture
def mlflow_store(mlflow_template_store, tmp_path, monkeypatch):
    shutil.copy(mlflow_template_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # a local store keeps its artifacts in ./mlruns
    return uri


@pytest.mark.parametrize("arch", ["tagcnn", "gcnn"])
def test_a_tagger_is_trained_scored_and_logged(arch, tiny_params, tagging_dir, mlflow_store, tmp_path):
    from mlflow import MlflowClient

    section = tiny_params["tagging"]
    train_out, evaluate_out = tmp_path / "train", tmp_path / "evaluate"
    tag_train.run(section, arch=arch, features=tagging_dir, out=train_out, state_dir=tmp_path / "resume",
                  params=tiny_params)
    model, meta = load_checkpoint(train_out / "model.pt", kind="tagger")
    labels = json.loads((tagging_dir / "labels.json").read_text())["labels"]
    assert model.name == arch and model.labels == labels and meta["train_params"]["model"] == arch
    metrics = json.loads((train_out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["best_val_bce"] > 0
    history = read_table(train_out / "history.csv")
    assert any(column.startswith("grad_norm.") for column in history.columns)  # per-layer norms (the params')
    assert ("grad_norm_recurrent" in history.columns) == (arch == "gcnn")
    assert not (tmp_path / "resume" / f"tag-{arch}.pt").exists()  # finished: no state left to resume

    tag_evaluate.run(section, arch=arch, features=tagging_dir, model=train_out / "model.pt", out=evaluate_out,
                     mlflow_params=tiny_params["mlflow"])
    scores = json.loads((evaluate_out / "metrics.json").read_text())
    for key in ("lwlrap", "chance_lwlrap", "lwlrap_curated", "lwlrap_noisy", "mAP"):
        assert 0.0 < scores[key] <= 1.0, key
    assert scores["lwlrap_low"] <= scores["lwlrap"] <= scores["lwlrap_high"]
    for key in ("lwlrap_curated", "lwlrap_noisy", "mAP"):  # every score has its interval
        assert 0.0 <= scores[f"{key}_low"] <= scores[f"{key}_high"] <= 1.0, key
    per_class = read_table(evaluate_out / "per_class.csv")
    assert list(per_class.label) == labels and {"low", "high", "lwlrap_curated", "lwlrap_noisy"} <= set(per_class)
    assert np.isnan(per_class.set_index("label").at["speech", "lwlrap_curated"])  # no curated clip has speech
    per_clip = read_table(evaluate_out / "per_clip.csv")
    assert len(per_clip) == scores["clips"] and set(labels) <= set(per_clip.columns)

    client = MlflowClient(tracking_uri=mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name(tiny_params["mlflow"]["experiment"]).experiment_id],
                              f"tags.stage = 'tag-train' and tags.architecture = '{arch}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["test_lwlrap"] == pytest.approx(scores["lwlrap"])


def test_tag_evaluate_refuses_a_denoiser_or_another_taggers_checkpoint(tiny_params, tagging_dir, tmp_path):
    denoiser = save_checkpoint(tmp_path / "crced.pt", build_model("crced").eval())
    with pytest.raises(ValueError, match="holds the denoiser 'crced', not a tagger"):
        tag_evaluate.run(tiny_params["tagging"], arch="crced", features=tagging_dir, model=denoiser,
                         out=tmp_path / "out", mlflow_params=tiny_params["mlflow"])
    labels = json.loads((tagging_dir / "labels.json").read_text())["labels"]
    gcnn = save_checkpoint(tmp_path / "gcnn.pt", build_model("gcnn", labels=labels).eval())
    with pytest.raises(ValueError, match="holds 'gcnn', not 'tagcnn'"):
        tag_evaluate.run(tiny_params["tagging"], arch="tagcnn", features=tagging_dir, model=gcnn,
                         out=tmp_path / "out", mlflow_params=tiny_params["mlflow"])
    other = save_checkpoint(tmp_path / "other.pt", build_model("gcnn", labels=["a", "speech"]).eval())
    with pytest.raises(ValueError, match="are not the clips'"):
        tag_evaluate.run(tiny_params["tagging"], arch="gcnn", features=tagging_dir, model=other,
                         out=tmp_path / "out", mlflow_params=tiny_params["mlflow"])


def test_tag_train_refuses_an_architecture_that_is_not_listed(tiny_params, tagging_dir, tmp_path):
    with pytest.raises(ValueError, match=r"tagging.architectures \['tagcnn', 'gcnn'\] does not list 'crnn'"):
        tag_train.run(tiny_params["tagging"], arch="crnn", features=tagging_dir, out=tmp_path, params=tiny_params)
