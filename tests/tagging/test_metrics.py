import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score

from hushkit.tagging.metrics import (
    average_precision, bootstrap_interval, chance_lwlrap, label_confusion, label_precisions, lwlrap,
    mean_average_precision, per_class_lwlrap,
)

# Three classes A, B, C and four clips, worked by hand.
TRUTH = np.array([[1, 0, 1],
                  [0, 1, 0],
                  [0, 0, 1],
                  [0, 0, 0]])
SCORES = np.array([[0.9, 0.5, 0.2],
                   [0.3, 0.2, 0.8],
                   [0.1, 0.7, 0.4],
                   [0.6, 0.1, 0.3]])
# Ranking each clip's labels by score:
#   clip 1: A (0.9), B, C (0.2). A is first: 1 positive among 1 → 1. C is third: A and C are positive among the 3
#           labels at or above it → 2/3.
#   clip 2: C, A, B (0.2). B is third, the only positive among 3 → 1/3.
#   clip 3: B, C (0.4), A. C is second, after the negative B → 1/2.
#   clip 4: no positive label: left out.
# Per class: A = 1 (clip 1); B = 1/3 (clip 2); C = (2/3 + 1/2) / 2 = 7/12.
# Overall: the mean over the four positive (clip, label) pairs, (1 + 2/3 + 1/3 + 1/2) / 4 = 0.625, which is also
# the per-class values weighted by each class's share of the positives: 1/4 * 1 + 1/4 * 1/3 + 2/4 * 7/12 = 0.625.
HAND_PER_CLASS = [1.0, 1 / 3, 7 / 12]
HAND_OVERALL = 0.625
# Average precision, down each column (clips ranked by that class's score):
#   A: 0.9 (clip 1, positive), 0.6, 0.3, 0.1: the positive is first → 1.
#   B: 0.7, 0.5, 0.2 (clip 2, positive), 0.1: third → 1/3.
#   C: 0.8, 0.4 (clip 3, positive), 0.3, 0.2 (clip 1, positive): 1/2 at clip 3, 2/4 at clip 1 → 1/2.
# mAP = (1 + 1/3 + 1/2) / 3 = 11/18.
HAND_AP = [1.0, 1 / 3, 0.5]


def test_hand_worked_example():
    precisions = label_precisions(TRUTH, SCORES)
    np.testing.assert_allclose(precisions[0], [1.0, np.nan, 2 / 3])
    assert lwlrap(TRUTH, SCORES) == pytest.approx(HAND_OVERALL)
    report = per_class_lwlrap(TRUTH, SCORES, ["A", "B", "C"], resamples=200)
    np.testing.assert_allclose(report.classes.lwlrap, HAND_PER_CLASS)
    np.testing.assert_allclose(report.classes.weight, [0.25, 0.25, 0.5])
    assert list(report.classes.positives) == [1, 1, 2]
    assert report.overall == pytest.approx(HAND_OVERALL)
    assert report.overall == pytest.approx(float((report.classes.lwlrap * report.classes.weight).sum()))
    np.testing.assert_allclose(average_precision(TRUTH, SCORES), HAND_AP)
    assert mean_average_precision(TRUTH, SCORES) == pytest.approx(11 / 18)


def test_ties_count_against_the_label():
    # A positive tied with a negative ranks second of two: precision 1/2.
    assert lwlrap(np.array([[1, 0]]), np.array([[0.5, 0.5]])) == pytest.approx(0.5)
    assert lwlrap(np.array([[1, 1]]), np.array([[0.5, 0.5]])) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_lwlrap_is_sklearns_lrap_weighted_by_positive_labels(seed):
    rng = np.random.default_rng(seed)
    clips, classes = 60, 7
    truth = (rng.random((clips, classes)) < rng.uniform(0.05, 0.5, classes)).astype(int)
    truth[:3] = 0  # clips without a positive label (weight 0 for sklearn; left out here)
    scores = rng.random((clips, classes))
    scores[10:20] = np.round(scores[10:20], 1)  # ties
    expected = label_ranking_average_precision_score(truth, scores, sample_weight=truth.sum(axis=1))
    assert lwlrap(truth, scores) == pytest.approx(expected, abs=1e-12)
    assert per_class_lwlrap(truth, scores, resamples=10).overall == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_average_precision_is_sklearns(seed):
    rng = np.random.default_rng(seed)
    truth = (rng.random((80, 5)) < 0.3).astype(int)
    scores = np.round(rng.random((80, 5)), 1)  # with ties
    expected = [average_precision_score(truth[:, c], scores[:, c]) for c in range(5)]
    np.testing.assert_allclose(average_precision(truth, scores), expected, atol=1e-12)
    assert mean_average_precision(truth, scores) == pytest.approx(np.mean(expected))


def test_chance_level_by_hand_and_by_random_scores():
    # One positive among two labels: rank 1 (precision 1) or 2 (1/2), equally likely → 3/4. Among three:
    # (1 + 1/2 + 1/3) / 3 = 11/18. All labels positive: always 1.
    assert chance_lwlrap(np.array([[1, 0]])) == pytest.approx(0.75)
    assert chance_lwlrap(np.array([[0, 1, 0]])) == pytest.approx(11 / 18)
    assert chance_lwlrap(np.array([[1, 1, 1]])) == pytest.approx(1.0)
    # Random scores on clips drawn from a known label prior average to the chance level.
    rng = np.random.default_rng(0)
    prior = np.array([0.6, 0.3, 0.2, 0.1, 0.05, 0.05])
    truth = (rng.random((400, len(prior))) < prior).astype(int)
    draws = [lwlrap(truth, rng.random(truth.shape)) for _ in range(200)]
    assert np.mean(draws) == pytest.approx(chance_lwlrap(truth), abs=3 * np.std(draws) / math.sqrt(len(draws)))
    assert chance_lwlrap(truth) < 0.75  # far below a useful tagger's


def test_a_class_without_positives_is_nan_with_a_note_and_no_weight():
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1], [0.7, 0.6, 0.9]])
    report = per_class_lwlrap(truth, scores, ["a", "b", "never"], resamples=50)
    row = report.classes.set_index("label").loc["never"]
    assert math.isnan(row.lwlrap) and math.isnan(row.low) and math.isnan(row.high)
    assert row.positives == 0 and row.weight == 0
    assert any("'never' has no positive clip" in note for note in report.notes)
    assert report.overall == pytest.approx(lwlrap(truth, scores))
    assert math.isnan(average_precision(truth, scores)[2])
    assert mean_average_precision(truth, scores) == pytest.approx(np.nanmean(average_precision(truth, scores)))


def test_a_clip_without_positives_is_left_out_with_a_note():
    with_empty = per_class_lwlrap(TRUTH, SCORES, resamples=20)
    without = per_class_lwlrap(TRUTH[:3], SCORES[:3], resamples=20)
    assert with_empty.overall == without.overall
    assert any("1 of 4 clips have no positive label" in note for note in with_empty.notes)
    assert math.isnan(lwlrap(np.zeros((2, 3), int), np.ones((2, 3))))


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate():
    rng = np.random.default_rng(1)
    truth = (rng.random((150, 4)) < 0.4).astype(int)
    scores = truth * 0.3 + rng.random(truth.shape)  # better than chance
    one = per_class_lwlrap(truth, scores, resamples=300, seed=7)
    again = per_class_lwlrap(truth, scores, resamples=300, seed=7)
    other = per_class_lwlrap(truth, scores, resamples=300, seed=8)
    assert one.classes.equals(again.classes) and (one.low, one.high) == (again.low, again.high)
    assert not one.classes[["low", "high"]].equals(other.classes[["low", "high"]])
    assert ((one.classes.low <= one.classes.lwlrap) & (one.classes.lwlrap <= one.classes.high)).all()
    assert one.low <= one.overall <= one.high and one.high - one.low < 0.2
    wider = per_class_lwlrap(truth, scores, resamples=300, seed=7, confidence=0.99)
    assert (wider.classes.high - wider.classes.low >= one.classes.high - one.classes.low).all()


def test_bootstrap_interval_of_any_score_agrees_with_the_per_class_one_for_lwlrap():
    rng = np.random.default_rng(1)
    truth = (rng.random((150, 4)) < 0.4).astype(int)
    scores = truth * 0.3 + rng.random(truth.shape)
    # the same resamples (the same seed draws the same clips) give the same lwlrap interval by either route
    pooled = per_class_lwlrap(truth, scores, resamples=200, seed=3)
    assert bootstrap_interval(lwlrap, truth, scores, resamples=200, seed=3) == pytest.approx((pooled.low, pooled.high))
    low, high = bootstrap_interval(mean_average_precision, truth, scores, resamples=200, seed=3)
    assert low <= mean_average_precision(truth, scores) <= high and high - low < 0.2
    assert bootstrap_interval(mean_average_precision, truth, scores, resamples=200, seed=3) == (low, high)
    assert all(math.isnan(v) for v in bootstrap_interval(lwlrap, np.zeros((3, 2), int), np.ones((3, 2))))
    with pytest.raises(ValueError, match="same shape"):
        bootstrap_interval(lwlrap, truth, scores[:, :2])


def test_label_confusion_by_hand():
    # labels hum, white, speech; clips: hum alone, hum with speech, white alone
    truth = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])
    scores = np.array([[0.9, 0.2, 0.4], [0.7, 0.6, 0.8], [0.3, 0.5, 0.1]])
    # Speech present beside hum in clip 1 is no confusion: hum's row scores speech on clip 0 alone. Every speech clip
    # also has hum, so speech's row has no clip for hum's column (NaN).
    expected = np.array([[0.8, 0.4, 0.4],
                         [0.3, 0.5, 0.1],
                         [np.nan, 0.6, 0.8]])
    np.testing.assert_allclose(label_confusion(truth, scores), expected)


@pytest.mark.parametrize("truth, scores, words", [
    (np.ones((2, 3)), np.ones((2, 2)), "same shape"),
    (np.array([[2, 0]]), np.ones((1, 2)), "only 0 and 1"),
    (np.array([[1, 0]]), np.array([[np.nan, 0.0]]), "finite"),
])
def test_bad_input_is_refused(truth, scores, words):
    with pytest.raises(ValueError, match=words):
        lwlrap(truth, scores)
