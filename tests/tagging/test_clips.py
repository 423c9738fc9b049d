import hashlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hushkit.audio import rms_db, write_audio
from hushkit.config.data import UNCATEGORIZED, UNSEEN
from hushkit.config.tagging import ClipParams, SplitCounts
from hushkit.tagging.categories import held_out_splits, label_set
from hushkit.tagging.clips import COLUMNS, plan_clips, render_clip, render_clips
from hushkit.tagging.labels import SPEECH, split_labels
from tests.tagging.conftest import RATE

PARAMS = ClipParams(seconds=1.0, curated_per_category=SplitCounts(train=5, val=2, test=3),
                    noisy=SplitCounts(train=12, val=4, test=6), max_noises=3)


@pytest.fixture(scope="module")
def plan(small_corpus):
    _, pools = small_corpus
    return plan_clips(pools, label_set(pools)[0], PARAMS)


def plan_sha256(plan: pd.DataFrame) -> str:
    return hashlib.sha256(plan.to_csv(index=False).encode()).hexdigest()


def test_skip_plans_the_same_clips_as_before_held_out_and_unnamed_noise_were_handled(plan):
    # The plan of this corpus with the default held_out (skip), computed before tagging.clips.held_out existed: the
    # clip table (every file, SNR, level and seed) is byte-identical, and so the audio (render_clip reads the row).
    assert PARAMS.held_out == "skip"
    assert plan_sha256(plan) == "516e1791a455d0a97eda8674b681ff8f7f2cb46fcd52dabe005349cac396f6b9"


def test_counts_per_split_and_subset(plan):
    assert list(plan.columns) == COLUMNS and plan.id.is_unique
    counts = plan.groupby(["split", "subset"]).size().to_dict()
    # two label categories (hum, white) of curated clips per split, and the noisy clips asked for
    assert counts == {("train", "curated"): 10, ("val", "curated"): 4, ("test", "curated"): 6,
                      ("train", "noisy"): 12, ("val", "noisy"): 4, ("test", "noisy"): 6}


def test_curated_clips_are_one_category_alone_and_noisy_ones_speech_plus_one_to_three(plan):
    curated, noisy = plan[plan.subset == "curated"], plan[plan.subset == "noisy"]
    for row in curated.itertuples():
        assert split_labels(row.labels) == [row.noise_paths.split("/")[1]] and row.speech_path == ""
    sizes = set()
    for row in noisy.itertuples():
        labels = split_labels(row.labels)
        paths, snrs = row.noise_paths.split(";"), [float(v) for v in row.snr_db.split(";")]
        assert labels[-1] == SPEECH and labels[:-1] == [p.split("/")[1] for p in paths]  # one clip per category
        assert len(set(labels)) == len(labels) and len(snrs) == len(paths)
        assert all(PARAMS.snr_db.low <= s <= PARAMS.snr_db.high for s in snrs)
        sizes.add(len(paths))
    assert sizes == {1, 2}  # up to max_noises (3), capped by the two label categories
    assert "siren" not in "".join(plan.noise_paths)  # held out of the label set


def test_clips_use_only_their_own_splits_files(small_corpus, plan):
    _, pools = small_corpus
    split_of = dict(zip(pools.path, pools.split))
    for row in plan.itertuples():
        for path in [p for p in [row.speech_path, *row.noise_paths.split(";")] if p]:
            assert split_of[path] == row.split, (row.id, path)
    train_noise = set(";".join(plan[plan.split == "train"].noise_paths).split(";"))
    test_noise = set(";".join(plan[plan.split == "test"].noise_paths).split(";"))
    assert not train_noise & test_noise


def test_the_plan_is_seeded(small_corpus, plan):
    _, pools = small_corpus
    labels = label_set(pools)[0]
    pd.testing.assert_frame_equal(plan, plan_clips(pools.sample(frac=1.0, random_state=3), labels, PARAMS))
    other = plan_clips(pools, labels, replace(PARAMS, seed=99))
    assert not plan.equals(other)


def test_rendered_clips_are_deterministic_in_any_order(small_corpus, plan):
    root, _ = small_corpus
    audio, snrs = render_clips(plan, root, RATE, PARAMS)
    assert audio.shape == (len(plan), RATE) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 0.99 + 1e-6
    assert np.isnan(snrs[plan.subset.to_numpy() == "curated"]).all()
    reversed_plan = plan.iloc[::-1].reset_index(drop=True)
    again, _ = render_clips(reversed_plan, root, RATE, PARAMS)
    np.testing.assert_array_equal(again[::-1], audio)


def test_levels_and_snrs_are_the_planned_ones(small_corpus, plan):
    root, _ = small_corpus
    audio, snrs = render_clips(plan, root, RATE, PARAMS)
    for i, row in enumerate(plan.itertuples()):
        peak_limited = np.abs(audio[i]).max() >= 0.99 - 1e-4
        if not peak_limited:
            assert rms_db(audio[i]) == pytest.approx(row.level_dbfs, abs=0.05)
        if row.subset == "noisy":
            targets = np.array([float(v) for v in row.snr_db.split(";")])
            # the noises are scaled separately and summed: their powers add (independent noises, roughly)
            expected = -10 * np.log10(np.sum(10 ** (-targets / 10)))
            assert snrs[i] == pytest.approx(expected, abs=1.0 if len(targets) > 1 else 0.05), row.id


def test_a_corpus_file_at_another_rate_is_named(small_corpus, plan, tmp_path):
    root, _ = small_corpus
    row = plan[plan.subset == "curated"].iloc[:1]
    path = row.noise_paths.iat[0]
    (tmp_path / path).parent.mkdir(parents=True)
    write_audio(tmp_path / path, np.zeros(8000, np.float32) + 0.01, 8000)
    with pytest.raises(ValueError, match=rf"{path}: 8000 Hz"):
        render_clips(row, tmp_path, RATE, PARAMS)


def test_a_split_without_speech_cannot_have_noisy_clips(small_corpus):
    _, pools = small_corpus
    no_val_speech = pools[~((pools.kind == "speech") & (pools.split == "val"))]
    with pytest.raises(ValueError, match="noisy val clips asked for, but the val split has no speech"):
        plan_clips(no_val_speech, label_set(pools)[0], PARAMS)
    quiet = replace(PARAMS, noisy=SplitCounts(train=2, val=0, test=2))
    assert not (plan_clips(no_val_speech, label_set(pools)[0], quiet).query("split == 'val'").subset == "noisy").any()


def test_render_clip_refuses_a_row_without_noise():
    row = pd.Series({"id": "x", "subset": "curated", "noise_paths": "", "snr_db": "", "level_dbfs": -20.0,
                     "seed": 1, "speech_path": ""})
    with pytest.raises(ValueError, match="clip x: no noise file"):
        render_clip(row, lambda path: np.zeros(10), RATE, PARAMS)


def test_learn_makes_clips_of_the_held_out_category_from_its_own_instance_split(small_corpus):
    _, pools = small_corpus
    learn = replace(PARAMS, held_out="learn")
    labels = label_set(pools, learn_held_out=True)[0]
    plan = plan_clips(pools, labels, learn)
    assignment = held_out_splits(pools, learn.seed)
    siren_files = {}
    for row in plan.itertuples():
        for path in row.noise_paths.split(";"):
            if "/siren/" in path:
                assert assignment[path] == row.split, (row.id, path)  # the tagger's split of that instance
                siren_files.setdefault(row.split, set()).add(path)
    assert set(siren_files) == {"train", "val", "test"}
    assert not (siren_files["train"] & siren_files["test"]) and not (siren_files["val"] & siren_files["test"])
    curated = plan[plan.subset == "curated"].groupby("split").labels.apply(set).to_dict()
    assert curated == {split: {"hum", "siren", "white"} for split in ("train", "val", "test")}
    pd.testing.assert_frame_equal(plan, plan_clips(pools.sample(frac=1.0, random_state=5), labels, learn))


def test_unnamed_noise_makes_clips_without_a_label_of_its_own(small_corpus):
    _, pools = small_corpus
    unnamed = pools.assign(category=pools.category.replace({"white": UNCATEGORIZED}))
    labels = label_set(unnamed)[0]
    plan = plan_clips(unnamed, labels, PARAMS)
    curated = plan[plan.subset == "curated"]
    # curated: hum labelled, the unnamed noise alone negative for every label
    assert {(row.noise_paths.split("/")[1], row.labels) for row in curated.itertuples()} == {
        ("hum", "hum"), ("white", "")}
    noisy = plan[plan.subset == "noisy"]
    for row in noisy.itertuples():
        named = [p.split("/")[1] for p in row.noise_paths.split(";") if "/white/" not in p]
        assert split_labels(row.labels) == [*named, SPEECH], row.id  # the unnamed noise adds no label
    assert any("/white/" in row.noise_paths for row in noisy.itertuples())
    assert (noisy.labels == SPEECH).any()  # speech in unnamed noise alone
    targets = labels.targets(plan.labels)
    assert targets.shape == (len(plan), 2) and not targets[(plan.labels == "").to_numpy()].any()


def test_a_corpus_of_unnamed_noise_alone_makes_speech_and_no_speech_clips(small_corpus):
    _, pools = small_corpus
    noise = pools.kind == "noise"
    unnamed = pools.assign(category=pools.category.where(~noise, UNCATEGORIZED),
                           split=pools.split.where(~noise | (pools.split != UNSEEN), "train"))
    labels = label_set(unnamed)[0]
    plan = plan_clips(unnamed, labels, PARAMS)
    assert labels.names == (SPEECH,)
    assert set(zip(plan.subset, plan.labels)) == {("curated", ""), ("noisy", SPEECH)}
    np.testing.assert_array_equal(labels.targets(plan.labels)[:, 0], (plan.subset == "noisy").to_numpy())
