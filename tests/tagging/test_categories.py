"""Which noise categories become labels (held-out ones with tagging.clips.held_out skip or learn; never the
unnamed `uncategorized`), and the instance split of the held-out categories' noise among the tagger's splits."""
import pandas as pd
import pytest

from hushkit.config.data import UNCATEGORIZED, UNSEEN
from hushkit.tagging.categories import held_out_splits, label_set, tagger_splits
from hushkit.tagging.labels import SPEECH


def held_out_pools(counts: dict[str, int]) -> pd.DataFrame:
    """pools.csv rows: one trained category (`hum`, 4 files over the splits) and held-out categories of `counts`
    instances each, all in the unseen split."""
    rows = [{"kind": "noise", "path": f"noise/hum/{i}.wav", "split": split, "speaker": "", "category": "hum"}
            for i, split in enumerate(("train", "train", "val", "test"))]
    rows += [{"kind": "noise", "path": f"noise/{category}/{i:02d}.wav", "split": UNSEEN, "speaker": "",
              "category": category} for category, count in counts.items() for i in range(count)]
    return pd.DataFrame(rows)


def test_skip_labels_the_trained_categories_and_names_the_held_out_ones(small_corpus):
    _, pools = small_corpus
    labels, held_out = label_set(pools)
    assert labels.names == ("hum", "white", SPEECH)
    assert held_out == ["siren"]  # only in the unseen split: the denoisers never train on it
    assert label_set(pools, learn_held_out=False) == (labels, held_out)


def test_learn_labels_the_held_out_categories_too(small_corpus):
    _, pools = small_corpus
    labels, held_out = label_set(pools, learn_held_out=True)
    assert labels.names == ("hum", "siren", "white", SPEECH)
    assert held_out == ["siren"]  # still named: a label the denoisers never trained on


def test_uncategorized_noise_is_never_a_label(small_corpus):
    _, pools = small_corpus
    unnamed = pools.assign(category=pools.category.replace({"white": UNCATEGORIZED}))
    assert label_set(unnamed)[0].names == ("hum", SPEECH)
    # held out and learned, it is still no label
    held = unnamed.assign(split=unnamed.split.where(unnamed.category != UNCATEGORIZED, UNSEEN))
    labels, held_out = label_set(held, learn_held_out=True)
    assert labels.names == ("hum", "siren", SPEECH) and held_out == ["siren", UNCATEGORIZED]


def test_a_corpus_of_unnamed_noise_alone_labels_speech_alone(small_corpus):
    _, pools = small_corpus
    noise = pools.kind == "noise"
    unnamed = pools.assign(category=pools.category.where(~noise, UNCATEGORIZED),
                           split=pools.split.where(~noise | (pools.split != UNSEEN), "train"))
    for learn in (False, True):
        labels, held_out = label_set(unnamed, learn_held_out=learn)
        assert labels.names == (SPEECH,) and held_out == []


@pytest.mark.parametrize("change, words", [
    ({"category": "speech"}, "named 'speech'"),
    ({"split": "unseen"}, "no noise category has training files; tagging needs at least one"),
    ({"kind": "speech"}, "no noise file"),
])
def test_bad_pools_are_refused(small_corpus, change, words):
    _, pools = small_corpus
    pools = pools.copy()
    noise = pools.kind == "noise"
    for column, value in change.items():
        pools.loc[noise, column] = value
    with pytest.raises(ValueError, match=words):
        label_set(pools)
    with pytest.raises(ValueError, match="lacks the columns"):
        label_set(pools.drop(columns=["split"]))


def test_learn_needs_no_trained_category(small_corpus):
    _, pools = small_corpus
    everything_held_out = pools.assign(split=pools.split.where(pools.kind != "noise", UNSEEN))
    assert label_set(everything_held_out, learn_held_out=True)[0].names == ("hum", "siren", "white", SPEECH)


def test_held_out_instances_are_split_disjointly_with_a_test_and_a_val_instance_each():
    pools = held_out_pools({"siren": 6, "rain": 3, "music": 20})
    assignment = held_out_splits(pools, seed=13)
    assert set(assignment) == set(pools.path[pools.split == UNSEEN])  # every held-out file once, nothing else
    counts = pd.Series(assignment).groupby(lambda path: path.split("/")[1]).value_counts().unstack()
    assert counts.loc["siren"].to_dict() == {"test": 1, "train": 4, "val": 1}
    assert counts.loc["rain"].to_dict() == {"test": 1, "train": 1, "val": 1}
    assert counts.loc["music"].to_dict() == {"test": 4, "train": 14, "val": 2}


def test_the_held_out_split_is_deterministic_per_category():
    pools = held_out_pools({"siren": 6, "music": 20})
    assignment = held_out_splits(pools, seed=13)
    assert held_out_splits(pools.sample(frac=1.0, random_state=1), seed=13) == assignment  # row order: no matter
    # a category's split comes from the seed and its own name: adding another leaves it as it was
    alone = held_out_splits(held_out_pools({"music": 20}), seed=13)
    assert alone == {path: split for path, split in assignment.items() if "/music/" in path}
    assert held_out_splits(pools, seed=14) != assignment


def test_tagger_splits_move_only_the_held_out_noise(small_corpus):
    _, pools = small_corpus
    moved = tagger_splits(pools, seed=13)
    held = (pools.split == UNSEEN).to_numpy()
    pd.testing.assert_frame_equal(moved[~held], pools[~held])
    assert UNSEEN not in set(moved.split)
    assert sorted(moved.split[held]) == ["test", "train", "train", "val"]  # siren's 4 instances
    assert (pools.split == UNSEEN).any()  # the table given is left as it was


@pytest.mark.parametrize("count", [1, 2])
def test_a_held_out_category_with_too_few_instances_is_named(count):
    pools = held_out_pools({"siren": 6, "rain": count})
    with pytest.raises(ValueError, match=rf"^tagging.clips.held_out is learn, but the held-out noise category "
                                         rf"'rain' has {count} instances?; it needs at least 3") as info:
        held_out_splits(pools, seed=13)
    assert "\n" not in str(info.value)
