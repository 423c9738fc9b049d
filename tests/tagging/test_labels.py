import numpy as np
import pandas as pd
import pytest

from hushkit.synthetic.noise import CATEGORIES
from hushkit.tagging.labels import DEFAULT_LABELS, SPEECH, LabelSet, label_set, split_labels


def test_label_set_is_the_trained_categories_then_speech(small_corpus):
    _, pools = small_corpus
    labels, held_out = label_set(pools)
    assert labels.names == ("hum", "white", SPEECH)
    assert held_out == ["siren"]  # only in the unseen split: nothing to learn it from
    assert labels.noise_categories == ["hum", "white"]


def test_default_labels_are_the_synthetic_categories_and_speech():
    assert DEFAULT_LABELS == (*sorted(CATEGORIES), SPEECH)


def test_multi_hot_targets_and_joined_strings():
    labels = LabelSet(("hum", "white", SPEECH))
    np.testing.assert_array_equal(labels.multi_hot("speech;hum"), [1, 0, 1])
    np.testing.assert_array_equal(labels.multi_hot(["white"]), [0, 1, 0])
    assert labels.join(["speech", "white", "hum"]) == "hum;white;speech"  # label-set order
    assert split_labels("hum;;speech") == ["hum", "speech"]
    targets = labels.targets(pd.Series(["hum", "white;speech"]))
    assert targets.dtype == np.float32 and targets.tolist() == [[1, 0, 0], [0, 1, 1]]
    assert labels.targets([]).shape == (0, 3)
    with pytest.raises(ValueError, match="not in the label set"):
        labels.multi_hot("rain")


@pytest.mark.parametrize("names, words", [((), "distinct"), (("a", "a"), "distinct"), (("a;b",), "free of")])
def test_bad_label_sets_are_refused(names, words):
    with pytest.raises(ValueError, match=words):
        LabelSet(names)


@pytest.mark.parametrize("change, words", [
    ({"category": "speech"}, "named 'speech'"),
    ({"split": "unseen"}, "no noise category has training files"),
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
