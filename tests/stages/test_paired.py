"""Recorded pairs (a paired corpus, VoiceBank+DEMAND's layout) through the data stages: downloaded from a loopback
server, kept only as whole pairs (every other file quarantined with its reason), copied into the splits without
mixing (the publisher's test split kept), packed for training and scored by the evaluation."""
from __future__ import annotations

import copy
import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hushkit.checks import DataCheckError
from hushkit.acquisition import catalogue
from hushkit.evaluation.results import write_evaluation
from hushkit.io import read_table
from hushkit.mixing import snr_db, snr_level
from hushkit.stages import baseline, download, features, mix
from hushkit.evaluation.scoring import test_split as split_of
from tests.conftest import PROXY_VARIABLES, serve

RATE = 48000  # VoiceBank+DEMAND's rate: ingestion resamples to the pipeline's
# pair id -> (clean seconds, noisy seconds or None when missing, SNR dB; None clean seconds: no clean file)
TRAIN = {f"p{spk}_{n:03d}": (1.0, 1.0, 2.5 + 5 * (i % 4)) for i, (spk, n) in
         enumerate((s, n) for s in (226, 227, 228, 229) for n in (1, 2, 3))}
TRAIN["p228_004"] = (None, 1.0, 10.0)  # a noisy file without its clean partner
TRAIN["p229_003"] = (1.0, 0.8, 10.0)  # sides of different lengths: not one recording
TEST = {f"p{spk}_{n:03d}": (1.0, 1.0, 2.5 + 5 * n) for spk, count in ((232, 3), (257, 2)) for n in range(count)}
SILENT = "p227_003"  # its clean side is digital silence
KEPT = {"train": 10, "test": 5}  # whole pairs kept: 12 train ids - p228_004 - p229_003 - p227_003 (silent)


def _pair(seed: int, seconds: float, snr: float) -> tuple[np.ndarray, np.ndarray]:
    """A voiced-like clean signal and the same plus white noise at `snr` dB (over the whole, all of it active)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    clean = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(150, 3000, 4)) * 0.05 * (1.2 + np.sin(3 * t))
    noise = rng.standard_normal(t.size)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (snr / 10))
    return clean.astype(np.float32), (clean + noise).astype(np.float32)


def _build_archives(staging: Path, served: Path) -> None:
    """The four published zips, each holding its own top folder, as Edinburgh DataShare serves them."""
    for split, pairs in (("train", TRAIN), ("test", TEST)):
        suffix = "trainset_28spk_wav" if split == "train" else "testset_wav"
        for n, (pair_id, (clean_s, noisy_s, snr)) in enumerate(pairs.items()):
            clean, noisy = _pair(n + (100 if split == "test" else 0), 1.0, snr)
            if pair_id == SILENT:
                clean = np.zeros_like(clean)
            for side, seconds, audio in (("clean", clean_s, clean), ("noisy", noisy_s, noisy)):
                if seconds is not None:
                    path = staging / f"{side}_{suffix}" / f"{pair_id}.wav"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(path, audio[: int(seconds * RATE)], RATE, subtype="PCM_16")
        for side in ("clean", "noisy"):
            folder = staging / f"{side}_{suffix}"
            with zipfile.ZipFile(served / f"{folder.name}.zip", "w") as zf:
                for f in sorted(folder.iterdir()):
                    zf.write(f, f"{folder.name}/{f.name}")


def _served_catalogue_entry(base: str) -> catalogue.Corpus:
    corpus = catalogue.get_corpus("voicebank_demand")  # the real entry, pointed at the loopback server
    return dataclasses.replace(corpus, resources=tuple(
        dataclasses.replace(r, url=f"{base}/{r.filename}", md5=None, size=None) for r in corpus.resources))


@pytest.fixture(scope="module")
def paired(tiny_params, tmp_path_factory):
    """download → mix → features on a served paired corpus alone; returns the params and the stages' folders."""
    work = tmp_path_factory.mktemp("paired")
    served = work / "served"
    served.mkdir()
    _build_archives(work / "staging", served)
    params = copy.deepcopy(tiny_params)
    params["download"].update(sources=["voicebank_demand"], cache=str(work / "cache"),
                              minimum={"pairs": 15, "pair_minutes": 0.2})
    params["mix"]["recorded"] = {"val_speakers": 1, "test_speakers": 1}
    with pytest.MonkeyPatch.context() as mp:
        for name in PROXY_VARIABLES:
            mp.delenv(name, raising=False)
        with serve(served) as base:
            mp.setitem(catalogue.CATALOGUE, "voicebank_demand", _served_catalogue_entry(base))
            download.run(params["download"], out=work / "corpus")
    mix.run(params["mix"], corpus=work / "corpus", out=work / "mix")
    features.run(params["features"], mix=work / "mix", corpus=work / "corpus", out=work / "features",
                 mix_params=params["mix"])
    return params, work


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def test_only_whole_pairs_are_kept_with_their_split_and_speaker(paired):
    _, work = paired
    manifest = _read(work / "corpus" / "manifest.csv")
    clean, noisy = manifest[manifest.kind == "clean"], manifest[manifest.kind == "noisy"]
    assert len(clean) == len(noisy) == sum(KEPT.values())
    assert sorted(clean.pair_id) == sorted(noisy.pair_id)
    assert clean.pair_id.str.startswith("voicebank_demand:").all()
    assert clean.speaker.str.fullmatch(r"voicebank_demand:p\d+").all()  # people named per source
    assert clean.groupby("split").size().to_dict() == KEPT
    assert (manifest.sample_rate == 16000).all() and manifest.path.str.startswith("voicebank_demand/").all()
    for row in manifest.sample(5, random_state=0).itertuples():
        assert sf.info(str(work / "corpus" / row.path)).samplerate == 16000
    assert not (manifest.kind.isin(["speech", "noise"])).any()


def test_every_other_file_is_quarantined_naming_its_partner(paired):
    _, work = paired
    quarantine = _read(work / "corpus" / "quarantine.csv")
    rows = {(Path(r.source).stem, r.kind): (r.reason, r.detail) for r in quarantine.itertuples()}
    assert set(rows) == {(SILENT, "clean"), (SILENT, "noisy"), ("p228_004", "noisy"), ("p229_003", "clean"),
                         ("p229_003", "noisy")}
    assert rows[(SILENT, "clean")][0] == "silent"
    reason, detail = rows[(SILENT, "noisy")]
    assert reason == "unpaired" and f"clean_trainset_28spk_wav/{SILENT}.wav" in detail and "(silent)" in detail
    assert rows[("p228_004", "noisy")] == ("unpaired", "no clean partner for 'p228_004' in the corpus")
    for side in ("clean", "noisy"):
        reason, detail = rows[("p229_003", side)]
        assert reason == "mismatched_pair" and "clean has 16000 samples, noisy 12800" in detail
    # nothing lost: every file of the archives is in the manifest or the quarantine report
    files = sum(1 for pairs in (TRAIN, TEST) for c, n, _ in pairs.values() for s in (c, n) if s is not None)
    assert len(_read(work / "corpus" / "manifest.csv")) + len(quarantine) == files


def test_recorded_pairs_are_copied_not_mixed_and_keep_the_published_test_split(paired):
    params, work = paired
    mixtures = _read(work / "mix" / "manifest.csv")
    assert (mixtures.origin == "recorded").all() and (mixtures.noise_path == "").all()
    test = mixtures[mixtures.split == "test"]
    assert sorted(test.speaker.unique()) == ["voicebank_demand:p232", "voicebank_demand:p257"]
    assert len(test) == KEPT["test"]
    val_speakers = mixtures[mixtures.split == "val"].speaker.unique()
    assert len(val_speakers) == params["mix"]["recorded"]["val_speakers"]
    assert (mixtures.groupby("speaker").split.nunique() == 1).all()
    assert len(mixtures) == sum(KEPT.values()) and mixtures.id.is_unique
    corpus = _read(work / "corpus" / "manifest.csv").set_index(["pair_id", "kind"])
    for row in mixtures.itertuples():
        clean, _ = sf.read(work / "mix" / row.clean_path, dtype="float32")
        noisy, _ = sf.read(work / "mix" / row.noisy_path, dtype="float32")
        original, _ = sf.read(work / "corpus" / corpus.loc[(row.pair_id, "clean"), "path"], dtype="float32")
        recorded, _ = sf.read(work / "corpus" / corpus.loc[(row.pair_id, "noisy"), "path"], dtype="float32")
        np.testing.assert_array_equal(clean, original)  # as recorded: no trim, gain or mixing
        np.testing.assert_array_equal(noisy, recorded)
        assert row.realized_snr_db == pytest.approx(snr_db(clean, noisy - clean, 16000), abs=1e-6)
        assert row.target_snr_db == snr_level(row.realized_snr_db)
        assert row.noise_category == "voicebank_demand"
    # the SNRs the fake corpus was recorded at, measured back: 48 -> 16 kHz keeps a third of the white noise's
    # power (0-8 of 0-24 kHz) and all of the speech's, so each is 10 log10(3) = 4.77 dB higher than built
    built = {**TRAIN, **TEST}
    measured = mixtures.set_index(mixtures.pair_id.str.split(":").str[1]).realized_snr_db
    gained = [measured[pid] - built[pid][2] for pid in measured.index]
    assert np.allclose(gained, 10 * np.log10(3), atol=0.5), gained


def test_recorded_training_pairs_are_packed_for_the_training_loop(paired):
    _, work = paired
    mixtures = _read(work / "mix" / "manifest.csv")
    for split in ("train", "val"):
        index = _read(work / "features" / split / "index.csv")
        expected = mixtures[mixtures.split == split].sort_values("id")
        assert list(index.id) == list(expected.id)
        clean = np.load(work / "features" / split / "clean.npy", mmap_mode="r")
        assert len(clean) == int(round(expected.duration.sum() * 16000))


def test_the_evaluation_scores_the_recorded_test_pairs(paired, tmp_path):
    params, work = paired
    baseline.run(params["evaluate"], name="noisy", mix=work / "mix", out=tmp_path / "noisy")
    per_file = read_table(tmp_path / "noisy" / "per_file.csv")
    test = _read(work / "mix" / "manifest.csv").query("split == 'test'")
    assert len(per_file) == min(len(test), params["evaluate"]["max_files"])
    assert set(per_file.noise_category) == {"voicebank_demand"}
    assert per_file.target_snr_db.isin(test.target_snr_db).all()
    assert np.isfinite(per_file[["pesq", "stoi", "si_sdr"]].to_numpy()).all()
    # the listening report says what a recorded example is: its measured SNR, not a level it was mixed at
    scored = split_of(work / "mix", params["evaluate"]["max_files"])
    board = write_evaluation(tmp_path / "summary", pd.concat([per_file, per_file.assign(system="copy")]),
                             {"noisy": "input", "copy": "baseline"}, mix=work / "mix", test=scored,
                             examples={"copy": tmp_path / "noisy" / "examples"}, title="paired")
    assert set(board.system) == {"noisy", "copy"}
    assert "recorded pair (voicebank_demand), " in (tmp_path / "summary" / "report.html").read_text()


def test_recorded_pairs_sit_beside_the_mixtures_without_reshuffling_them(paired, corpus_dir, rirs_dir, mix_dir,
                                                                          tiny_params, tmp_path):
    _, work = paired
    combined = tmp_path / "corpus"
    combined.mkdir()
    for folder in ("speech", "noise"):
        os.symlink(corpus_dir / folder, combined / folder)
    os.symlink(work / "corpus" / "voicebank_demand", combined / "voicebank_demand")
    manifests = [_read(corpus_dir / "manifest.csv"), _read(work / "corpus" / "manifest.csv")]
    pd.concat(manifests, ignore_index=True).to_csv(combined / "manifest.csv", index=False)
    params = {**tiny_params["mix"], "recorded": {"val_speakers": 1, "test_speakers": 1}}
    mix.run(params, corpus=combined, out=tmp_path / "mix", rirs=rirs_dir)
    both = _read(tmp_path / "mix" / "manifest.csv")
    alone = _read(mix_dir / "manifest.csv")
    pd.testing.assert_frame_equal(both[both.origin == "mixed"].reset_index(drop=True), alone)
    assert (both.origin == "recorded").sum() == sum(KEPT.values())
    # a capped evaluation takes files spread over the test split: the recorded pairs too, not only the mixtures
    capped = split_of(tmp_path / "mix", 6)
    assert len(capped) == 6 and set(capped.origin) == {"mixed", "recorded"}


def test_below_the_pair_minimum_the_stage_says_so(paired, tmp_path):
    params, work = paired
    # the corpus is cached now: no server needed
    settings = {**params["download"], "minimum": {"pairs": 16}}
    with pytest.MonkeyPatch.context() as mp:
        corpus = catalogue.get_corpus("voicebank_demand")
        mp.setitem(catalogue.CATALOGUE, "voicebank_demand", dataclasses.replace(corpus, resources=tuple(
            dataclasses.replace(r, url="http://127.0.0.1:9/unused", md5=None, size=None) for r in corpus.resources)))
        with pytest.raises(DataCheckError, match=r"below download.minimum: pairs 15 < 16.*silent 1, unpaired 2, "
                                                 r"mismatched_pair 2"):
            download.run(settings, out=tmp_path / "corpus")


@pytest.mark.parametrize("kinds, message", [
    (["speech"], "speech but no noise to mix it with"),
    (["noise"], "noise but no speech to mix it with"),
])
def test_speech_or_noise_alone_is_a_clear_error(corpus_dir, tiny_params, tmp_path, kinds, message):
    manifest = _read(corpus_dir / "manifest.csv")
    for folder in kinds:
        os.symlink(corpus_dir / folder, tmp_path / folder)
    manifest[manifest.kind.isin(kinds)].to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ValueError, match=f"manifest.csv: {message}"):
        mix.run(tiny_params["mix"], corpus=tmp_path, out=tmp_path / "mix")
