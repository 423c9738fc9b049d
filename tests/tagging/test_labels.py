import numpy as np
import pandas as pd
import pytest

from hushkit.models.tagger import DEFAULT_LABELS
from hushkit.synthetic.noise import CATEGORIES
from hushkit.tagging.labels import SPEECH, LabelSet, split_labels


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



def test_speech_alone_is_a_label_set_and_an_empty_string_no_label():
    labels = LabelSet((SPEECH,))  # a corpus whose only noise is unnamed (hushkit.tagging.categories)
    assert labels.noise_categories == [] and labels.join(["uncategorized", SPEECH]) == SPEECH
    np.testing.assert_array_equal(labels.targets(["", "speech"]), [[0], [1]])
