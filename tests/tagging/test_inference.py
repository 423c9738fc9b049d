"""Tagging recordings (hushkit.tagging.inference): any file read as mono at the tagger's rate, whole-file and
segment rows whose probabilities are the tagger's own on exactly that audio, the threshold, long audio in windows,
the refusals (a denoiser's checkpoint, a file that is not audio), and each file's predicted noise category."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from hushkit.audio import AudioReadError, resample
from hushkit.models import build_model, save_checkpoint
from hushkit.tagging import inference
from hushkit.tagging.inference import (
    clip_probabilities, load_tagger, predicted_categories, read_for_tagger, segment_bounds, tag_file, tags_table,
)

RATE = 16000


@pytest.fixture(scope="module")
def tagger(untrained_tagger_checkpoint):
    return load_tagger(untrained_tagger_checkpoint)


def probabilities(tagger, audio: np.ndarray) -> np.ndarray:
    """The tagger's clip probabilities of `audio`, computed here without the module."""
    with torch.no_grad():
        return torch.sigmoid(tagger(torch.from_numpy(np.asarray(audio, dtype=np.float32))[None]))[0].numpy()


def stereo_44k(path, seconds: float = 2.5):
    """A 44.1 kHz stereo file whose channels differ: a tone left, noise right."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * 44100)) / 44100
    audio = np.stack([0.2 * np.sin(2 * np.pi * 440 * t), 0.05 * rng.standard_normal(len(t))], axis=1)
    sf.write(path, audio, 44100, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0]


def test_any_file_is_read_as_its_channels_mean_at_the_taggers_rate(tmp_path):
    audio = stereo_44k(tmp_path / "take.wav")
    mono, seconds = read_for_tagger(tmp_path / "take.wav", RATE)
    assert seconds == pytest.approx(2.5)
    assert mono.dtype == np.float32 and mono.ndim == 1 and abs(len(mono) - 2.5 * RATE) <= 1
    np.testing.assert_allclose(mono, resample(audio.mean(axis=1), 44100, RATE), atol=1e-6)


def test_a_whole_file_is_one_row_of_the_taggers_probabilities_and_its_tags(tmp_path, tagger):
    stereo_44k(tmp_path / "take.wav")
    (row,) = tag_file(tagger, tmp_path / "take.wav", threshold=0.5)
    expected = probabilities(tagger, read_for_tagger(tmp_path / "take.wav", RATE)[0])
    assert (row["file"], row["start_s"]) == (str(tmp_path / "take.wav"), 0.0)
    assert row["end_s"] == pytest.approx(2.5)
    np.testing.assert_allclose([row[label] for label in tagger.labels], expected, atol=1e-6)
    assert row["tags"] == ";".join(label for label, p in zip(tagger.labels, expected) if p > 0.5)
    assert 0 < len(row["tags"].split(";")) < len(tagger.labels)  # the untrained tagger's scores straddle 0.5


@pytest.mark.parametrize("seconds, segment, expected", [
    (2.5, 1.0, [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]),
    (2.0, 0.5, [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]),
    (0.3, 1.0, [(0.0, 0.3)]),
    (2.5, None, [(0.0, 2.5)]),
])
def test_segments_tile_the_file_the_last_one_shorter(seconds, segment, expected):
    np.testing.assert_allclose(segment_bounds(seconds, segment), expected, atol=1e-12)


def test_float_error_adds_no_empty_segment_and_a_bad_length_is_refused():
    bounds = segment_bounds(1.1, 0.1)
    assert len(bounds) == 11 and bounds[-1][1] == 1.1 and all(end > start for start, end in bounds)
    with pytest.raises(ValueError, match="segment_seconds must be > 0"):
        segment_bounds(1.0, 0.0)


def test_each_segment_row_scores_its_own_stretch_of_the_audio(tmp_path, tagger):
    rng = np.random.default_rng(2)
    t = np.arange(int(2.5 * RATE)) / RATE
    # three different seconds: noise, a tone, near silence (the last half a second long)
    audio = np.concatenate([0.1 * rng.standard_normal(RATE), 0.3 * np.sin(2 * np.pi * 300 * t[:RATE]),
                            1e-3 * rng.standard_normal(RATE // 2)]).astype(np.float32)
    sf.write(tmp_path / "three.wav", audio, RATE, subtype="FLOAT")
    rows = tag_file(tagger, tmp_path / "three.wav", segment_seconds=1.0)
    np.testing.assert_allclose([(row["start_s"], row["end_s"]) for row in rows], [(0, 1), (1, 2), (2, 2.5)])
    for row, (a, b) in zip(rows, [(0, RATE), (RATE, 2 * RATE), (2 * RATE, len(audio))]):
        np.testing.assert_allclose([row[label] for label in tagger.labels], probabilities(tagger, audio[a:b]),
                                   atol=1e-6)
    assert len({round(row["speech"], 6) for row in rows}) == 3  # the stretches differ, so a mix-up would show


def test_audio_longer_than_a_window_gets_each_labels_highest_window_probability(tagger):
    rng = np.random.default_rng(3)
    audio = np.concatenate([0.1 * rng.standard_normal(RATE), np.zeros(RATE, dtype=np.float32),
                            0.3 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE)]).astype(np.float32)
    windows = [probabilities(tagger, audio[i * RATE:(i + 1) * RATE]) for i in range(3)]
    np.testing.assert_allclose(clip_probabilities(tagger, audio, window_seconds=1.0), np.max(windows, axis=0),
                               atol=1e-6)
    np.testing.assert_allclose(clip_probabilities(tagger, audio), probabilities(tagger, audio), atol=1e-6)


def test_the_threshold_decides_the_tags(tmp_path, tagger):
    stereo_44k(tmp_path / "take.wav")
    (everything,) = tag_file(tagger, tmp_path / "take.wav", threshold=0.0)
    (nothing,) = tag_file(tagger, tmp_path / "take.wav", threshold=1.0)
    assert everything["tags"] == ";".join(tagger.labels) and nothing["tags"] == ""
    with pytest.raises(ValueError, match="threshold must be in"):
        tag_file(tagger, tmp_path / "take.wav", threshold=1.5)


def test_the_table_has_position_labels_then_tags(tmp_path, tagger):
    stereo_44k(tmp_path / "take.wav")
    table = tags_table(tag_file(tagger, tmp_path / "take.wav"), tagger.labels)
    assert list(table.columns) == ["file", "start_s", "end_s", *tagger.labels, "tags"]
    assert list(tags_table([], tagger.labels).columns) == list(table.columns)


def test_a_denoiser_checkpoint_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "denoiser.pt"
    save_checkpoint(path, build_model("crced").eval())
    with pytest.raises(ValueError, match=r"denoiser\.pt: holds the denoiser 'crced', not a tagger"):
        load_tagger(path)


@pytest.mark.parametrize("content, problem", [(b"just some text\n", "not readable as audio"), (b"", "empty file")])
def test_a_file_that_is_not_audio_is_an_error_naming_it(tmp_path, tagger, content, problem):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(AudioReadError, match=f"notes.txt: {problem}"):
        tag_file(tagger, path)


def test_non_finite_samples_are_an_error_naming_the_file(tmp_path, tagger):
    audio = np.zeros(RATE, dtype=np.float32)
    audio[100] = np.nan
    sf.write(tmp_path / "nan.wav", audio, RATE, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="nan.wav: holds NaN or infinite samples"):
        tag_file(tagger, tmp_path / "nan.wav")


# --- predicted noise categories (the denoiser evaluation's breakdown where the categories are unknown) -------------

def noise_files(folder, count: int) -> dict[str, object]:
    """`count` one-second files unlike each other (white noise, tones), keyed by an id in reverse order (the
    table must keep the order given, not sort it)."""
    rng = np.random.default_rng(4)
    files = {}
    for i in range(count):
        t = np.arange(RATE) / RATE
        audio = 0.1 * rng.standard_normal(RATE) if i % 2 else 0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t)
        path = folder / f"file{i}.wav"
        sf.write(path, audio.astype(np.float32), RATE, subtype="FLOAT")
        files[f"id{count - i}"] = path
    return files


def test_each_file_gets_the_noise_category_its_tagger_finds_most_probable(tmp_path, tagger):
    files = noise_files(tmp_path, 4)
    table = predicted_categories(tagger, files)
    assert list(table.columns) == ["id", "predicted_category", "probability"]
    assert list(table.id) == list(files)
    noise = [label for label in tagger.labels if label != "speech"]
    for row, path in zip(table.itertuples(), files.values()):
        expected = probabilities(tagger, read_for_tagger(path, RATE)[0])[[tagger.labels.index(n) for n in noise]]
        assert row.predicted_category == noise[int(np.argmax(expected))]
        assert row.probability == pytest.approx(float(expected.max()), abs=1e-6)
    assert len(predicted_categories(tagger, {})) == 0


def test_speech_and_uncategorized_are_never_predicted(tmp_path, monkeypatch):
    """The probabilities made up per file: speech and uncategorized the most probable in every file, the noise
    categories below them in a different order per file, and a tie (the first of the tied labels wins)."""
    torch.manual_seed(0)
    labels = ["hum", "uncategorized", "white", "babble", "speech"]
    model = build_model("tagcnn", labels=labels, channels=[8, 8], hidden=8).eval()
    made_up = {  # per file: probabilities in label order
        "a": [0.30, 0.99, 0.20, 0.10, 0.98],
        "b": [0.10, 0.99, 0.20, 0.60, 0.98],
        "c": [0.40, 0.99, 0.70, 0.10, 0.98],
        "tie": [0.50, 0.99, 0.50, 0.50, 0.98],
    }
    files = {name: tmp_path / f"{name}.wav" for name in made_up}
    for path in files.values():
        sf.write(path, np.zeros(RATE // 2, np.float32), RATE)
    given = iter(made_up.values())  # the files are scored in the order given
    monkeypatch.setattr(inference, "clip_probabilities",
                        lambda tagger, audio, window_seconds: np.asarray(next(given), dtype=np.float32))
    table = predicted_categories(model, files).set_index("id")
    assert table.predicted_category.to_dict() == {"a": "hum", "b": "babble", "c": "white", "tie": "hum"}
    assert table.probability.to_dict() == pytest.approx({"a": 0.30, "b": 0.60, "c": 0.70, "tie": 0.50})


def test_a_tagger_without_noise_categories_is_refused(tmp_path):
    model = build_model("tagcnn", labels=["uncategorized", "speech"], channels=[8, 8], hidden=8).eval()
    with pytest.raises(ValueError, match=r"hold no noise category to predict"):
        predicted_categories(model, noise_files(tmp_path, 1))
