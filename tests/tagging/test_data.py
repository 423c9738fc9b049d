import numpy as np
import pytest
import torch

from hushkit.models import build_model
from hushkit.tagging.data import TaggingSplit, clip_scores


def make_split(clips: int = 6, samples: int = 100, classes: int = 3) -> TaggingSplit:
    waveforms = np.arange(clips * samples, dtype=np.float32).reshape(clips, samples)  # each sample says where it is
    targets = np.eye(clips, classes, dtype=np.float32)
    return TaggingSplit(waveforms, targets, np.array(["curated", "noisy"] * clips)[:clips])


def test_batches_are_clips_with_their_targets():
    split = make_split()
    waveforms, targets = split.batch(0, 8, 100, np.random.default_rng(0))
    assert waveforms.shape == (8, 100) and targets.shape == (8, 3) and waveforms.dtype == targets.dtype == torch.float32
    rows = (waveforms[:, 0] // 100).long()
    torch.testing.assert_close(targets, torch.from_numpy(split.targets)[rows])


def test_shorter_segments_are_random_crops_of_one_clip():
    split = make_split()
    waveforms, _ = split.batch(0, 16, 30, np.random.default_rng(1))
    assert waveforms.shape == (16, 30)
    assert (torch.diff(waveforms, dim=1) == 1).all()  # contiguous
    assert (waveforms[:, 0] // 100 == waveforms[:, -1] // 100).all()  # within one clip
    assert len(set((waveforms[:, 0] % 100).tolist())) > 1  # at different places


def test_a_part_is_a_slice_of_the_same_batch_and_advances_the_generator_alike():
    split = make_split()
    rng_whole, rng_part = np.random.default_rng(5), np.random.default_rng(5)
    whole, whole_targets = split.batch(0, 8, 100, rng_whole)
    part, part_targets = split.batch(0, 8, 100, rng_part, part=slice(4, 8))
    torch.testing.assert_close(part, whole[4:8])
    torch.testing.assert_close(part_targets, whole_targets[4:8])
    assert rng_whole.integers(1 << 30) == rng_part.integers(1 << 30)


def test_fixed_batches_cover_every_clip_in_order_from_its_start():
    split = make_split(clips=5)
    batches = list(split.fixed_batches(2, 40))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    waveforms = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(waveforms, split.waveforms[:, :40])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), split.targets)
    longer = next(split.fixed_batches(5, 120))[0]
    assert longer.shape == (5, 120) and (longer[:, 100:] == 0).all()  # zero-padded past the clip


def test_subsets_and_bad_shapes():
    split = make_split()
    noisy = split.subset("noisy")
    assert len(noisy) == 3 and (noisy.subsets == "noisy").all()
    np.testing.assert_array_equal(noisy.targets, split.targets[1::2])
    with pytest.raises(ValueError, match="one each per clip"):
        TaggingSplit(np.zeros((3, 10)), np.zeros((2, 3)), np.array(["curated"] * 3))
    with pytest.raises(ValueError, match="at least one clip"):
        split.subset("nothing")


def test_clip_scores_are_the_sigmoid_of_the_logits_in_eval_mode():
    torch.manual_seed(0)
    model = build_model("tagcnn", labels=["a", "b", "c"]).train()
    waveforms = 0.1 * np.random.default_rng(0).standard_normal((5, 4000)).astype(np.float32)
    scores = clip_scores(model, waveforms, batch_size=2)
    assert not model.training and scores.shape == (5, 3)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(waveforms))).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
