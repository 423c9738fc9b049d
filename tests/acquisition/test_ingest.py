"""Ingesting local folders: the bad-input matrix (every file accepted-and-correct or quarantined with the right
reason), an untouched source tree, the cache, and the real-small corpus."""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hushkit.audio import resample, to_mono
from hushkit.acquisition.ingest import (
    MANIFEST_COLUMNS, QUARANTINE_COLUMNS, REASONS, IngestRules, ingest_folder, summary_line, write_quarantine_report,
)
from hushkit.io import read_table

SR = 16000
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-small"
HAVE_MP3 = "MP3" in sf.available_formats()


def _signal(seed: int, seconds: float, rate: int, channels: int = 1, level: float = 0.3) -> np.ndarray:
    """Three sines per channel below 3 kHz (inside every rate's band), peak about `level`; distinct per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    cols = []
    for _ in range(channels):
        freqs, phases = rng.uniform(100, 3000, 3), rng.uniform(0, 2 * np.pi, 3)
        cols.append(sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases)) * (level / 3))
    return np.stack(cols, axis=1).astype(np.float32)


@dataclass
class Expect:
    """What an accepted file must become: resample(mean over channels of `signal`) within `atol` (None: lossy,
    judged by SNR), lasting `seconds`."""
    signal: np.ndarray
    rate: int
    seconds: float
    atol: float | None


Maker = Callable[[Path], "Expect | None"]


def _wav(seed: int, rate: int = SR, subtype: str = "PCM_16", channels: int = 1, seconds: float = 1.0,
         atol: float = 1e-4, fmt: str | None = None, level: float = 0.3) -> Maker:
    def make(path: Path) -> Expect:
        x = _signal(seed, seconds, rate, channels, level)
        sf.write(path, x, rate, subtype=subtype, format=fmt)
        return Expect(x, rate, seconds, atol)
    return make


def _raw(data: bytes) -> Maker:
    def make(path: Path) -> None:
        path.write_bytes(data)
    return make


def _edit(seed: int, edit: Callable[[np.ndarray], None], subtype: str = "PCM_16") -> Maker:
    """A 1 s signal changed in place by `edit` before writing (quarantined cases)."""
    def make(path: Path) -> None:
        x = _signal(seed, 1.0, SR)
        edit(x)
        sf.write(path, x, SR, subtype=subtype)
    return make


def _set(index: int, value: float) -> Callable[[np.ndarray], None]:
    def edit(x: np.ndarray) -> None:
        x[index] = value
    return edit


def _scale(factor: float) -> Callable[[np.ndarray], None]:
    def edit(x: np.ndarray) -> None:
        x *= factor
        np.clip(x, -1.0, 1.0, out=x)
    return edit


def _some_at_full_scale(fraction: float) -> Maker:
    """A good file with a few isolated full-scale samples: under the clip limit, so accepted."""
    def make(path: Path) -> Expect:
        x = _signal(40, 1.0, SR)
        idx = np.random.default_rng(0).choice(len(x), int(fraction * len(x)), replace=False)
        x[idx, 0] = 1.0
        sf.write(path, x, SR, subtype="FLOAT")
        return Expect(x, SR, 1.0, 1e-5)
    return make


def _truncated_data(path: Path) -> Expect:
    """A 2 s PCM_16 WAV cut after 0.8 s of samples (header still says 2 s): accepted with the 0.8 s present."""
    x = _signal(50, 2.0, SR)
    full = path.with_name(".full.tmp")
    sf.write(full, x, SR, subtype="PCM_16", format="WAV")
    keep = 44 + 2 * int(0.8 * SR)  # libsndfile's canonical 44-byte header, 2 bytes a frame
    path.write_bytes(full.read_bytes()[:keep])
    full.unlink()
    return Expect(x[: int(0.8 * SR)], SR, 0.8, 1e-4)


def _cut(maker: Maker, fraction: float | None = None, nbytes: int | None = None) -> Maker:
    def make(path: Path) -> None:
        maker(path)
        data = path.read_bytes()
        path.write_bytes(data[: nbytes if nbytes is not None else int(len(data) * fraction)])
    return make


def _copy_of(rel: str) -> Maker:
    def make(path: Path) -> None:
        shutil.copyfile(path.parents[1] / rel, path)  # the original sits one folder up, built earlier
    return make


def _symlink_dir(path: Path) -> None:
    target = path.parents[1] / "outside_target"
    target.mkdir(exist_ok=True)
    _wav(60)(target / "linked.wav")
    path.symlink_to(target, target_is_directory=True)


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would wait forever for a writer


def _dangling(path: Path) -> None:
    path.symlink_to(path.with_name("nowhere.wav"))


def _link_loop(path: Path) -> None:
    path.symlink_to(path.name)  # itself


def _folder(path: Path) -> None:
    path.mkdir()


def _ten_minutes(path: Path) -> Expect:
    """Cheap long file: 10 min of 8 kHz noise, PCM_16 (~9.6 MB)."""
    x = (np.random.default_rng(7).standard_normal((600 * 8000, 1)) * 0.1).astype(np.float32)
    sf.write(path, x, 8000, subtype="PCM_16")
    return Expect(x, 8000, 600.0, 1e-4)


def _case(rel: str, make: Maker, reason: str | None, *marks) -> pytest.param:
    return pytest.param(rel, make, reason, id=rel, marks=marks)


# (path under the source tree, how to make it, expected reason or None for accepted). Built in this order, which
# matters only for the duplicate (its original must exist first); ingestion itself walks sorted.
CASES = [
    _case("formats/pcm16.wav", _wav(1), None),
    _case("formats/pcm_u8.wav", _wav(2, subtype="PCM_U8", atol=0.02), None),
    _case("formats/pcm24.wav", _wav(3, subtype="PCM_24", atol=1e-5), None),
    _case("formats/pcm32.wav", _wav(4, subtype="PCM_32", atol=1e-5), None),
    _case("formats/float32.wav", _wav(5, subtype="FLOAT", atol=1e-5), None),
    _case("formats/lossless.flac", _wav(6, rate=44100, subtype="PCM_24", atol=1e-5), None),
    _case("formats/tone.aiff", _wav(7, rate=22050, fmt="AIFF"), None),
    _case("formats/LOUD.WAV", _wav(8), None),
    _case("formats/vorbis.ogg", _wav(9, rate=48000, channels=2, subtype="VORBIS", atol=None), None),
    _case("formats/mpeg.mp3", _wav(10, rate=22050, subtype="MPEG_LAYER_III", atol=None), None,
          pytest.mark.skipif(not HAVE_MP3, reason="this libsndfile cannot write MP3 (needs libsndfile >= 1.1)")),
    _case("rates/r8000.wav", _wav(11, rate=8000), None),
    _case("rates/r22050.wav", _wav(12, rate=22050), None),
    _case("rates/r44100.wav", _wav(13, rate=44100), None),
    _case("rates/r48000.wav", _wav(14, rate=48000), None),
    _case("rates/r96000.wav", _wav(15, rate=96000), None),
    _case("channels/stereo.wav", _wav(16, rate=44100, channels=2), None),
    _case("channels/six.wav", _wav(17, rate=48000, channels=6, subtype="PCM_24", atol=1e-5), None),
    _case("long/ten_minutes.wav", _ten_minutes, None),
    _case("unicode/шум_ноль.wav", _wav(18), None),
    _case("unicode/声音.flac", _wav(19), None),
    _case("outdoor/street/cars.wav", _wav(20), None),  # nested: category is the first folder, "outdoor"
    _case("loose.wav", _wav(21), None),  # top level: category "uncategorized"
    _case("clash/same.flac", _wav(22), None),  # same stem, two formats: both kept, distinct outputs
    _case("clash/same.wav", _wav(23), None),
    _case("levels/quiet_-55dB.wav", _wav(24, level=0.0045, atol=1e-4), None),
    _case("levels/some_full_scale.wav", _some_at_full_scale(0.005), None),
    _case("broken/truncated_data.wav", _truncated_data, None),
    _case("zz_copies/pcm16_copy.wav", _copy_of("formats/pcm16.wav"), "duplicate"),
    _case("broken/truncated_header.wav", _cut(_wav(30), nbytes=30), "unreadable"),
    _case("broken/truncated.flac", _cut(_wav(31, seconds=2.0), fraction=0.5), "unreadable"),
    _case("broken/text_renamed.wav", _raw(b"this is not audio, just a note someone renamed\n" * 20), "unreadable"),
    _case("broken/zero_bytes.wav", _raw(b""), "empty"),
    _case("broken/no_frames.wav", _wav(32, seconds=0.0), "empty"),
    _case("broken/nan.wav", _edit(33, _set(1000, np.nan), subtype="FLOAT"), "non_finite"),
    _case("broken/inf.wav", _edit(34, _set(2000, np.inf), subtype="FLOAT"), "non_finite"),
    _case("levels/silent.wav", _edit(35, _scale(0.0)), "silent"),
    _case("levels/quiet_-78dB.wav", _edit(36, _scale(0.001), subtype="FLOAT"), "silent"),
    _case("levels/too_short.wav", _wav(37, seconds=0.1), "too_short"),
    _case("levels/clipped.wav", _edit(38, _scale(8.0)), "clipped"),
    _case("notes.txt", _raw(b"recorded in the kitchen\n"), "not_audio"),
    _case("README.md", _raw(b"# my noises\n"), "not_audio"),
    _case("formats/.DS_Store", _raw(b"\x00\x00\x00\x01Bud1" + bytes(64)), "not_audio"),
    _case("formats/._pcm16.wav", _raw(b"\x00\x05\x16\x07" + bytes(4092)), "not_audio"),  # AppleDouble fork
    _case("formats/voice.m4a", _raw(bytes(range(256)) * 8), "unsupported"),
    _case("formats/.hidden.wav", _wav(39), "unsupported"),
    _case("linked", _symlink_dir, "unsupported"),
    _case("odd/pipe.wav", _fifo, "not_a_file"),
    _case("odd/dangling.wav", _dangling, "unreadable"),
    _case("odd/loop.wav", _link_loop, "unreadable"),
    _case("odd/folder.wav", _folder, "not_a_file"),
]
NOT_FILES = {"linked", "odd/folder.wav"}  # entries that are folders (os.walk does not list them as files)


def _tree(root: Path) -> dict[str, str]:
    """sha256 of every regular file (through links), the target of every other link, the type of anything else, by
    relative path; nothing but a regular file is opened."""
    found = {}
    for here, dirs, files in os.walk(root):
        for name in files:
            path = Path(here) / name
            if path.is_symlink() and not path.is_file():
                found[path.relative_to(root).as_posix()] = f"link to {os.readlink(path)}"
            elif not path.is_file():
                found[path.relative_to(root).as_posix()] = f"mode {path.lstat().st_mode:o}"
            else:
                found[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    base = tmp_path_factory.mktemp("ingest")
    source, out = base / "source", base / "out"
    expects: dict[str, Expect | None] = {}
    for param in CASES:
        rel, make, _ = param.values
        if any(m.name == "skipif" and m.args[0] for m in param.marks):
            continue
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        expects[rel] = make(path)
    before = _tree(source)
    result = ingest_folder(source, "noise", out, SR, progress=False)
    report = base / "quarantine.csv"
    write_quarantine_report(result, report)
    return {"source": source, "out": out, "result": result, "expects": expects, "before": before,
            "report": read_table(report)}


def _outcome(matrix, rel: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    src = str(matrix["source"] / rel)
    res = matrix["result"]
    return res.accepted[res.accepted.source == src], res.quarantine[res.quarantine.source == src]


@pytest.mark.parametrize("rel, make, reason", CASES)
def test_matrix_case(matrix, rel, make, reason):
    acc, qua = _outcome(matrix, rel)
    assert len(acc) + len(qua) == 1, f"{rel}: must end up exactly once, accepted or quarantined"
    if reason is not None:
        assert len(qua) == 1, f"{rel} was accepted, expected quarantine as {reason}"
        assert qua.reason.iat[0] == reason, f"{rel}: {qua.reason.iat[0]}: {qua.detail.iat[0]}"
        assert len(qua.detail.iat[0]) > 10
        return
    assert len(acc) == 1, f"{rel} quarantined: {qua.reason.iat[0]}: {qua.detail.iat[0]}"
    row, exp = acc.iloc[0], matrix["expects"][rel]
    out, sr = sf.read(matrix["out"] / row.path, dtype="float32")
    assert sr == SR == row.sample_rate and out.ndim == 1
    assert row.path.endswith(".flac") and row.path.startswith("noise/")
    assert abs(len(out) / SR - exp.seconds) <= 1e-3 and abs(row.duration - len(out) / SR) < 1e-6
    parts = Path(rel).parts
    assert row.category == (parts[0] if len(parts) > 1 else "uncategorized")
    assert row.source_rate == exp.rate and row.source_channels == exp.signal.shape[1]
    # the same decoding and the one resampling, by hand: equal up to 24-bit quantization
    decoded, rate = sf.read(matrix["source"] / rel, dtype="float32", always_2d=True)
    reference = resample(to_mono(decoded), rate, SR)
    assert len(out) == len(reference)
    np.testing.assert_allclose(out, reference, atol=1e-6, rtol=0)
    # and close to the signal that was written, within the source format's precision
    original = resample(to_mono(exp.signal), exp.rate, SR)
    if exp.atol is not None:
        np.testing.assert_allclose(out, original, atol=exp.atol, rtol=0)
    else:  # lossy codec
        snr = 10 * np.log10(np.sum(original ** 2) / np.sum((original - out) ** 2))
        assert snr > 20.0, f"{rel}: {snr:.1f} dB against the signal written"


def test_truncated_data_is_noted(matrix):
    acc, _ = _outcome(matrix, "broken/truncated_data.wav")
    assert acc.note.iat[0].startswith("truncated") and "0.800 s" in acc.note.iat[0]
    assert "1 accepted truncated" in summary_line(matrix["result"])


def test_duplicate_and_clash_details(matrix):
    _, dup = _outcome(matrix, "zz_copies/pcm16_copy.wav")
    assert str(matrix["source"] / "formats/pcm16.wav") in dup.detail.iat[0]
    acc = matrix["result"].accepted
    clash = sorted(acc.path[acc.path.str.startswith("noise/clash/")])
    assert clash == ["noise/clash/same.flac", "noise/clash/same.wav.flac"]
    _, clipped = _outcome(matrix, "levels/clipped.wav")
    assert "% of samples at full scale (limit 1.0%)" in clipped.detail.iat[0]


def test_nothing_lost_nothing_touched(matrix):
    res, source = matrix["result"], matrix["source"]
    expected_good = {r for r, e in matrix["expects"].items() if _reason(r) is None}
    accepted = {Path(s).relative_to(source).as_posix() for s in res.accepted.source}
    assert accepted == expected_good
    # the report on disk names every rejected entry once, with a known reason and a sentence
    report = matrix["report"]
    assert list(report.columns) == QUARANTINE_COLUMNS
    rejected = {Path(s).relative_to(source).as_posix(): r for s, r in zip(report.source, report.reason)}
    assert rejected == {r: _reason(r) for r in matrix["expects"] if _reason(r) is not None}
    assert report.reason.isin(REASONS).all() and (report.detail.str.len() > 10).all()
    # every file under the source is accounted for exactly once (a linked folder or one named x.wav is one entry) ...
    assert not accepted & set(rejected) and accepted | set(rejected) == set(matrix["before"]) | NOT_FILES
    # ... and the source is byte-identical: nothing modified, nothing deleted, nothing added
    assert _tree(source) == matrix["before"]
    assert list(res.accepted.columns) == MANIFEST_COLUMNS and res.accepted.path.is_unique
    line = summary_line(res)
    assert line.startswith(f"accepted {len(expected_good)} files (") and "duplicate 1" in line


def _reason(rel: str) -> str | None:
    return next(p.values[2] for p in CASES if p.values[0] == rel)


def test_speech_labels(tmp_path):
    source = tmp_path / "speech"
    for i, rel in enumerate(["103-1240-0000.flac", "alice/take1.wav", "alice/take2.wav", "bob.wav",
                             "corpus/2/19-198-0001.flac"]):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        _wav(100 + i)(source / rel)
    res = ingest_folder(source, "speech", tmp_path / "out", SR, prefix="real_", language="en", progress=False)
    speakers = dict(zip((Path(s).name for s in res.accepted.source), res.accepted.speaker))
    assert speakers == {"103-1240-0000.flac": "103", "take1.wav": "alice", "take2.wav": "alice", "bob.wav": "bob",
                        "19-198-0001.flac": "19"}
    assert (res.accepted.language == "en").all() and (res.accepted.category == "").all()
    assert res.accepted.path.str.startswith("real_speech/").all()
    assert (tmp_path / "out" / "real_speech.manifest.csv").is_file()


def test_cache_reuses_redoes_and_cleans(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    for i, name in enumerate(["a.wav", "b.wav", "c.wav"]):
        _wav(200 + i, rate=22050, seconds=1.0 + i)(source / name)
    first = ingest_folder(source, "noise", out, SR, progress=False)
    stamps = {p: (out / p).stat().st_mtime_ns for p in first.accepted.path}
    time.sleep(0.01)
    _wav(210, rate=22050)(source / "b.wav")  # new content: redone
    (source / "c.wav").unlink()  # gone: its output goes too
    second = ingest_folder(source, "noise", out, SR, progress=False)
    assert (out / "noise/a.flac").stat().st_mtime_ns == stamps["noise/a.flac"]
    assert (out / "noise/b.flac").stat().st_mtime_ns != stamps["noise/b.flac"]
    assert not (out / "noise/c.flac").exists() and list(second.accepted.path) == ["noise/a.flac", "noise/b.flac"]
    pd.testing.assert_series_equal(first.accepted.iloc[0], second.accepted.iloc[0], check_names=False)
    # stricter rules apply to cached rows too, without decoding again
    third = ingest_folder(source, "noise", out, SR, IngestRules(min_seconds=1.5), progress=False)
    assert list(third.quarantine.reason) == ["too_short", "too_short"] and not (out / "noise/a.flac").exists()


def test_max_seconds(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for i, seconds in enumerate([1.0, 2.0, 30.0]):
        _wav(400 + i, seconds=seconds)(source / f"s{seconds:02.0f}.wav")
    res = ingest_folder(source, "noise", tmp_path / "out", SR, IngestRules(max_seconds=1.5), progress=False)
    assert [Path(s).name for s in res.accepted.source] == ["s01.wav"]
    assert list(res.quarantine.reason) == ["too_long", "too_long"]
    assert "maximum 1.5 s" in res.quarantine.detail.iat[1] and "30.0 s" in res.quarantine.detail.iat[1]


def test_output_inside_source_is_refused(tmp_path):
    _wav(300)(tmp_path / "a.wav")
    with pytest.raises(ValueError, match="overlap"):
        ingest_folder(tmp_path, "noise", tmp_path / "ingested", SR, progress=False)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")
def test_real_small(tmp_path):
    out = tmp_path / "out"
    speech = ingest_folder(REAL / "speech", "speech", out, SR, progress=False)
    noise = ingest_folder(REAL / "noise", "noise", out, SR, progress=False)
    assert len(speech.accepted) == 251 and speech.accepted.speaker.nunique() == 251 and speech.quarantine.empty
    assert (speech.accepted.source_rate == 16000).all() and (speech.accepted.sample_rate == SR).all()
    # all 100 noise files are accounted for; the set holds two byte-identical pairs (n56 = n58, n7 = n9)
    assert len(noise.accepted) + len(noise.quarantine) == 100
    assert set(noise.quarantine.reason) <= {"duplicate"} and (noise.quarantine.detail.str.len() > 10).all()
    assert sorted(Path(s).name for s in noise.quarantine.source) == ["n58.wav", "n9.wav"]
    assert (noise.accepted.category == "uncategorized").all()
    assert abs(noise.accepted.duration.sum() - noise.accepted.source_duration.sum()) < 0.01 * len(noise.accepted)

    # second run: everything from the cache, no output file rewritten
    stamps = {p: (out / p).stat().st_mtime_ns for p in [*speech.accepted.path, *noise.accepted.path]}
    again = [ingest_folder(REAL / k, k, out, SR, progress=False) for k in ("speech", "noise")]
    assert {p: (out / p).stat().st_mtime_ns for p in stamps} == stamps
    pd.testing.assert_frame_equal(again[0].accepted, speech.accepted, check_dtype=False)
    pd.testing.assert_frame_equal(again[1].accepted, noise.accepted, check_dtype=False)


def test_level_is_judged_after_resampling_too(tmp_path, monkeypatch):
    """Energy above the pipeline's band is gone after resampling: a loud 12 kHz whistle at 48 kHz is silence at
    16 kHz. Judged on the output too (also for cached rows), so an accepted file is never silent."""
    source = tmp_path / "src"
    source.mkdir()
    t = np.arange(48000) / 48000
    whistle = 0.3 * np.sin(2 * np.pi * 12000 * t)
    sf.write(source / "whistle.wav", whistle.astype(np.float32), 48000, subtype="FLOAT")
    quiet_hum = 0.01 * np.sin(2 * np.pi * 1000 * t)  # about -43 dBFS once the whistle is gone
    sf.write(source / "whistle_hum.wav", (whistle + quiet_hum).astype(np.float32), 48000, subtype="FLOAT")
    out = tmp_path / "out"
    res = ingest_folder(source, "noise", out, SR, progress=False)
    assert list(res.quarantine.reason) == ["silent"] and Path(res.quarantine.source.iat[0]).name == "whistle.wav"
    assert "after resampling to 16000 Hz" in res.quarantine.detail.iat[0]
    row = res.accepted.iloc[0]
    assert row.source_rms_dbfs > -15 and -45 < row.rms_dbfs < -41

    import hushkit.acquisition.ingest as ingest

    decoded = []
    convert = ingest._convert
    monkeypatch.setattr(ingest, "_convert", lambda path, *a: decoded.append(path.name) or convert(path, *a))
    stricter = ingest_folder(source, "noise", out, SR, IngestRules(silence_dbfs=-40.0), progress=False)
    assert stricter.accepted.empty and list(stricter.quarantine.reason) == ["silent", "silent"]
    assert "after resampling" in stricter.quarantine.detail.iat[1]
    assert decoded == ["whistle.wav"]  # whistle_hum.wav was judged from the cache, without decoding
