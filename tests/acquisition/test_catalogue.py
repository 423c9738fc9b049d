"""The corpus catalogue: honest entries, and each parser on a tiny fake of its corpus's layout."""
from __future__ import annotations

import dataclasses
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hushkit.acquisition.catalogue import CATALOGUE, archive_stem, fetch_corpus, get_corpus
from hushkit.acquisition.parsers import (
    COLUMNS,
    parse_common_voice,
    parse_demand,
    parse_esc50,
    parse_fsdd,
    parse_librispeech,
    parse_ms_snsd,
    parse_musan,
    parse_urbansound8k,
    parse_voicebank_demand,
)

REQUIRED = {"voicebank_demand", "ms_snsd", "librispeech_dev_clean", "demand", "esc50", "urbansound8k", "fsdd",
            "musan", "common_voice"}


def _wav(path: Path, sr: int = 16000) -> Path:
    """0.1 s of quiet noise; FLAC when the name says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = (0.01 * np.random.default_rng(len(path.name)).standard_normal(int(0.1 * sr))).astype(np.float32)
    sf.write(path, audio, sr, subtype="PCM_16")
    return path


def _rows(df: pd.DataFrame) -> dict[str, dict]:
    return {row["path"]: row for row in df.to_dict("records")}


# -------------------------------------------------------------------------------------------------------- entries


def test_catalogue_entries_are_complete_and_honest():
    assert REQUIRED <= set(CATALOGUE)
    for name, corpus in CATALOGUE.items():
        assert corpus.name == name and corpus.kind in ("speech", "noise", "paired")
        assert corpus.license and corpus.homepage.startswith("https://") and callable(corpus.parse)
        filenames = [r.filename for r in corpus.resources]
        assert len(set(filenames)) == len(filenames), name
        for res in corpus.resources:
            assert res.url.startswith("https://"), res.url
            assert archive_stem(res.filename) != res.filename, f"{res.filename} is not an archive name"
            if not res.verified:  # a checksum is never invented: an entry without one says so
                assert "trusted on first use" in corpus.note, name
    assert get_corpus("common_voice").resources == () and get_corpus("common_voice").archive_format == "none"
    assert get_corpus("voicebank_demand").kind == "paired"
    assert all(r.md5 for r in get_corpus("demand").resources) and len(get_corpus("demand").resources) == 17
    for name in ("librispeech_dev_clean", "musan", "urbansound8k", "voicebank_demand"):
        assert all(r.md5 for r in get_corpus(name).resources), name


def test_unknown_corpus_lists_the_known_names():
    with pytest.raises(ValueError, match=r"unknown corpus 'nope'; known: .*demand.*voicebank_demand"):
        get_corpus("nope")


def test_archive_stem():
    assert archive_stem("dev-clean.tar.gz") == "dev-clean" and archive_stem("a.zip") == "a"
    assert archive_stem("x.tgz") == "x" and archive_stem("musan.tar.bz2") == "musan"


# -------------------------------------------------------------------------------------------------------- parsers


def test_voicebank_demand_pairs_speakers_and_splits(tmp_path):
    # fetch_corpus's layout: each archive in a folder named after it, holding the archive's own top folder
    for clean, noisy, names in (("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", ["p226_001", "p287_010"]),
                                ("clean_testset_wav", "noisy_testset_wav", ["p232_001"])):
        for folder in (clean, noisy):
            for name in names:
                _wav(tmp_path / folder / folder / f"{name}.wav")
    df = parse_voicebank_demand(tmp_path)
    assert list(df.columns) == COLUMNS and len(df) == 6
    row = _rows(df)["noisy_testset_wav/noisy_testset_wav/p232_001.wav"]
    assert row == {"path": "noisy_testset_wav/noisy_testset_wav/p232_001.wav", "kind": "noisy", "speaker": "p232",
                   "category": None, "language": "en", "split": "test", "pair_id": "p232_001"}
    assert set(df[df.split == "train"].speaker) == {"p226", "p287"}
    assert (df.groupby("pair_id").kind.apply(sorted) == pd.Series([["clean", "noisy"]] * 3,
                                                                  index=["p226_001", "p232_001", "p287_010"])).all()


def test_voicebank_demand_lists_unpaired_files_and_refuses_half_sets(tmp_path):
    _wav(tmp_path / "clean_testset_wav" / "p232_001.wav")
    with pytest.raises(ValueError, match=r"voicebank_demand: test set has clean audio but no 'noisy_testset_wav'"):
        parse_voicebank_demand(tmp_path)
    _wav(tmp_path / "noisy_testset_wav" / "p232_002.wav")
    # each listed with its pair id: the download stage quarantines a file whose partner is missing (never dropped)
    df = parse_voicebank_demand(tmp_path)
    assert sorted(zip(df.kind, df.pair_id)) == [("clean", "p232_001"), ("noisy", "p232_002")]
    with pytest.raises(ValueError, match="voicebank_demand: none of the folders"):
        parse_voicebank_demand(_empty(tmp_path))


def test_ms_snsd(tmp_path):
    base = tmp_path / "MS-SNSD-master"
    for rel in ("clean_train/p234_001.wav", "clean_test/clnsp0.wav", "noise_train/AirConditioner_1.wav",
                "noise_train/Babble_12.wav", "noise_test/NeighborSpeaking_2.wav"):
        _wav(base / rel)
    rows = _rows(parse_ms_snsd(tmp_path))
    assert rows["MS-SNSD-master/clean_train/p234_001.wav"]["speaker"] == "p234"
    assert rows["MS-SNSD-master/clean_test/clnsp0.wav"]["speaker"] is None
    assert rows["MS-SNSD-master/clean_test/clnsp0.wav"]["language"] == "en"
    noise = {r["category"] for r in rows.values() if r["kind"] == "noise"}
    assert noise == {"AirConditioner", "Babble", "NeighborSpeaking"}
    assert rows["MS-SNSD-master/noise_test/NeighborSpeaking_2.wav"]["split"] == "test"
    (base / "noise_test" / "NeighborSpeaking_2.wav").unlink()
    (base / "noise_test").rmdir()
    with pytest.raises(ValueError, match=r"ms_snsd: expected folder 'noise_test' not found in"):
        parse_ms_snsd(tmp_path)


def test_librispeech(tmp_path):
    chapter = tmp_path / "dev-clean" / "LibriSpeech" / "dev-clean" / "84" / "121123"
    _wav(chapter / "84-121123-0000.flac")
    _wav(chapter / "84-121123-0001.flac")
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n")
    _wav(tmp_path / "dev-clean" / "LibriSpeech" / "dev-clean" / "174" / "50561" / "174-50561-0000.flac")
    df = parse_librispeech(tmp_path)
    assert sorted(df.speaker) == ["174", "84", "84"] and set(df.split) == {"dev-clean"} and set(df.language) == {"en"}
    assert df.path[0] == "dev-clean/LibriSpeech/dev-clean/174/50561/174-50561-0000.flac"
    assert len(parse_librispeech(tmp_path / "dev-clean" / "LibriSpeech")) == 3  # root = the LibriSpeech folder
    with pytest.raises(ValueError, match=r"librispeech_dev_clean: expected folder 'LibriSpeech' not found"):
        parse_librispeech(chapter)


def test_demand(tmp_path):
    _wav(tmp_path / "DKITCHEN_16k" / "DKITCHEN" / "ch01.wav")
    _wav(tmp_path / "DKITCHEN_16k" / "DKITCHEN" / "ch02.wav")
    _wav(tmp_path / "TBUS_16k" / "TBUS" / "ch01.wav")
    _wav(tmp_path / "SCAFE_48k" / "ch01.wav")  # a folder carrying the rate suffix itself
    df = parse_demand(tmp_path)
    assert dict(df.category.value_counts()) == {"DKITCHEN": 2, "TBUS": 1, "SCAFE": 1}
    assert set(df.kind) == {"noise"} and df.language.isna().all()
    with pytest.raises(ValueError, match=r"demand: no <ENVIRONMENT>/chNN.wav"):
        parse_demand(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir(exist_ok=True)
    return folder


def test_esc50(tmp_path):
    base = tmp_path / "ESC-50-master"
    _wav(base / "audio" / "1-100032-A-0.wav", sr=44100)
    _wav(base / "audio" / "1-100038-A-14.wav", sr=44100)
    (base / "meta").mkdir()
    (base / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
        "1-100038-A-14.wav,2,14,chirping_birds,False,100038,A\n")
    rows = _rows(parse_esc50(tmp_path))
    assert rows["ESC-50-master/audio/1-100032-A-0.wav"]["category"] == "dog"
    assert rows["ESC-50-master/audio/1-100038-A-14.wav"]["split"] == "fold2"
    (base / "audio" / "1-100032-A-0.wav").unlink()
    with pytest.raises(ValueError, match=r"esc50: 1 file\(s\) listed in .*esc50.csv are missing, e.g. .*1-100032"):
        parse_esc50(tmp_path)
    (base / "meta" / "esc50.csv").unlink()
    with pytest.raises(ValueError, match=re.escape("esc50: expected file 'meta/esc50.csv' not found in")):
        parse_esc50(tmp_path)


def test_urbansound8k(tmp_path):
    base = tmp_path / "UrbanSound8K"
    _wav(base / "audio" / "fold1" / "100032-3-0-0.wav", sr=22050)
    _wav(base / "audio" / "fold5" / "100263-2-0-117.wav", sr=22050)
    (base / "metadata").mkdir()
    (base / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100032-3-0-0.wav,100032,0.0,0.317551,1,1,3,dog_bark\n"
        "100263-2-0-117.wav,100263,58.5,62.5,1,5,2,children_playing\n")
    rows = _rows(parse_urbansound8k(tmp_path))
    assert rows["UrbanSound8K/audio/fold1/100032-3-0-0.wav"]["category"] == "dog_bark"
    assert rows["UrbanSound8K/audio/fold5/100263-2-0-117.wav"]["split"] == "fold5"
    (base / "metadata" / "UrbanSound8K.csv").write_text("slice_file_name,fold\n100032-3-0-0.wav,1\n")
    with pytest.raises(ValueError, match=r"urbansound8k: .*UrbanSound8K.csv lacks column\(s\) class"):
        parse_urbansound8k(tmp_path)


def test_fsdd(tmp_path):
    recordings = tmp_path / "free-spoken-digit-dataset-1.0.10" / "recordings"
    for name in ("0_jackson_0", "3_theo_12", "9_yweweler_49"):
        _wav(recordings / f"{name}.wav", sr=8000)
    df = parse_fsdd(tmp_path)
    assert sorted(df.speaker) == ["jackson", "theo", "yweweler"] and set(df.kind) == {"speech"}
    _wav(recordings / "README.wav", sr=8000)
    with pytest.raises(ValueError, match=r"fsdd: .*README.wav is not named <digit>_<speaker>_<index>.wav"):
        parse_fsdd(tmp_path)


def test_musan(tmp_path):
    top = tmp_path / "musan" / "musan"
    _wav(top / "music" / "fma" / "music-fma-0000.wav")
    _wav(top / "noise" / "free-sound" / "noise-free-sound-0000.wav")
    _wav(top / "speech" / "librivox" / "speech-librivox-0000.wav")
    (top / "noise" / "free-sound" / "ANNOTATIONS").write_text("noise-free-sound-0000\n")
    df = parse_musan(tmp_path)
    assert list(df.category) == ["music", "noise", "speech"] and set(df.kind) == {"noise"}
    assert list(parse_musan(top).path) == [p.split("musan/musan/")[1] for p in df.path]  # root = the musan folder
    shutil.rmtree(top / "speech")
    with pytest.raises(ValueError, match=r"musan: expected folder .*speech not found"):
        parse_musan(tmp_path)


def test_common_voice_user_folder(tmp_path):
    lang = tmp_path / "cv-corpus-17.0-2024-03-15" / "en"
    _wav(lang / "clips" / "common_voice_en_1.wav")
    _wav(lang / "clips" / "common_voice_en_2.wav")
    (lang / "validated.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
        "abc123\tcommon_voice_en_1.wav\tHe said \"hello\".\t2\t0\t\t\t\ten\t\n"
        "def456\tcommon_voice_en_2.wav\tQuote \" alone\t2\t0\t\t\t\ten\t\n")
    df = parse_common_voice(tmp_path)
    assert list(df.path) == ["cv-corpus-17.0-2024-03-15/en/clips/common_voice_en_1.wav",
                             "cv-corpus-17.0-2024-03-15/en/clips/common_voice_en_2.wav"]
    assert list(df.speaker) == ["abc123", "def456"] and set(df.language) == {"en"}
    (lang / "clips" / "common_voice_en_2.wav").unlink()
    with pytest.raises(ValueError, match=r"common_voice: 1 file\(s\) listed in .*validated.tsv are missing"):
        parse_common_voice(tmp_path)
    with pytest.raises(ValueError, match=r"common_voice: expected file 'validated.tsv' not found"):
        parse_common_voice(_empty(tmp_path))


# ------------------------------------------------------------------------------------------------ fetch_corpus




def test_fetch_corpus_downloads_extracts_and_parses(file_server, tmp_path):
    served, base = file_server
    staging = tmp_path / "staging"
    for name in ("0_jackson_0", "1_nicolas_3"):
        _wav(staging / "free-spoken-digit-dataset-1.0.10" / "recordings" / f"{name}.wav", sr=8000)
    with zipfile.ZipFile(served / "fsdd.zip", "w") as zf:
        for f in sorted(staging.rglob("*.wav")):
            zf.write(f, f.relative_to(staging).as_posix())
    fsdd = get_corpus("fsdd")
    local = dataclasses.replace(fsdd, resources=(dataclasses.replace(fsdd.resources[0], url=f"{base}/fsdd.zip"),))
    df = fetch_corpus(local, tmp_path / "cache", tmp_path / "data", retries=1, backoff=0.01, progress=True)
    assert list(df.path) == [
        "free-spoken-digit-dataset-1.0.10/free-spoken-digit-dataset-1.0.10/recordings/0_jackson_0.wav",
        "free-spoken-digit-dataset-1.0.10/free-spoken-digit-dataset-1.0.10/recordings/1_nicolas_3.wav"]
    assert (tmp_path / "cache" / "free-spoken-digit-dataset-1.0.10.zip.sha256").is_file()  # trust on first use
    (served / "fsdd.zip").unlink()  # cached and extracted: the second call needs no server
    assert fetch_corpus(local, tmp_path / "cache", tmp_path / "data", progress=False).equals(df)
