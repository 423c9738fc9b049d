"""The scan stage under real DVC: `local` folders holding a dangling link, a named pipe, a folder named like audio, a
link loop and an unreadable file never fail or hang `dvc repro download`; each is quarantined with its reason, and a
second `dvc repro` reruns nothing but the (cheap) scan."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from hushkit.stages import scan
from tests.conftest import pipeline_repo, run_command
from tests.stages.test_download import _tone

BOUND_S = 600  # the whole `dvc repro download` must end within this (a pipe read would wait forever)


def _bad_entries(speech: Path, noise: Path) -> dict[str, str]:
    """Every kind of entry that is not a readable regular file; returns the expected reason by path."""
    (speech / "dangling.wav").symlink_to(speech / "deleted-long-ago.wav")
    os.mkfifo(speech / "x.wav")
    (speech / "y.wav").mkdir()
    (speech / "loop.wav").symlink_to("loop.wav")
    os.mkfifo(noise / "hum" / "pipe.flac")
    expected = {"speech/dangling.wav": "unreadable", "speech/x.wav": "not_a_file", "speech/y.wav": "not_a_file",
                "speech/loop.wav": "unreadable", "noise/hum/pipe.flac": "not_a_file"}
    if os.geteuid() != 0:  # root reads a chmod-000 file anyway (tests/acquisition/test_scan.py fakes the error instead)
        locked = _tone(speech / "carol" / "locked.wav", 99)
        locked.chmod(0)
        expected["speech/carol/locked.wav"] = "unreadable"
    return expected


@pytest.fixture
def local_repo(tmp_path, tiny_params) -> tuple[Path, dict, dict[str, str]]:
    params = copy.deepcopy(tiny_params)
    params["download"].update(sources=["local"], cache=".cache/corpora",
                              local={"speech": "corpora/speech", "noise": "corpora/noise", "language": "en"},
                              minimum={"speakers": 3, "speech_minutes": 0.1, "noise_files": 3,
                                       "noise_categories": 1, "noise_minutes": 0.05})
    repo, env = pipeline_repo(tmp_path / "repo", params)
    speech, noise = repo / "corpora" / "speech", repo / "corpora" / "noise"
    for i, speaker in enumerate(["alice", "bob", "carol"]):
        for take in range(2):
            _tone(speech / speaker / f"{take}.wav", 10 * i + take, seconds=2.0)
    for j in range(3):
        _tone(noise / "hum" / f"hum{j}.wav", 50 + j, seconds=2.0)
    return repo, env, _bad_entries(speech, noise)


@pytest.mark.e2e
def test_bad_entries_in_local_folders_are_quarantined_and_never_stop_dvc(local_repo):
    repo, env, expected = local_repo
    first = run_command(["dvc", "repro", "download"], repo, env, timeout=BOUND_S).stdout
    assert "Running stage 'scan'" in first and "Running stage 'download'" in first
    quarantine = pd.read_csv(repo / "data" / "corpus" / "quarantine.csv", keep_default_na=False)
    found = {Path(s).relative_to("corpora").as_posix(): r for s, r in zip(quarantine.source, quarantine.reason)}
    assert found == {**expected, "speech/README.md": "not_audio", "noise/README.md": "not_audio"}
    assert (quarantine.detail.str.len() > 10).all()
    manifest = pd.read_csv(repo / "data" / "corpus" / "manifest.csv", keep_default_na=False)
    assert len(manifest) == 9  # every good file accepted

    again = run_command(["dvc", "repro", "download"], repo, env, timeout=BOUND_S).stdout
    assert "Running stage 'scan'" in again  # always_changed: it looks at the folders every time
    assert "Stage 'download' didn't change" in again and "Running stage 'download'" not in again

    corpora = repo / "corpora"
    touched = corpora / "speech" / "alice" / "0.wav"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # same bytes
    assert "Stage 'download' didn't change" in run_command(["dvc", "repro", "download"], repo, env,
                                                          timeout=BOUND_S).stdout
    _tone(corpora / "speech" / "dave" / "0.wav", 77, seconds=2.0)  # a new file is a change
    assert "Running stage 'download'" in run_command(["dvc", "repro", "download"], repo, env,
                                                     timeout=BOUND_S).stdout
    manifest = pd.read_csv(repo / "data" / "corpus" / "manifest.csv", keep_default_na=False)
    assert len(manifest) == 10 and "local:dave" in set(manifest.speaker)


def test_the_listing_is_empty_without_the_local_source(tiny_params, tmp_path):
    scan.run({**tiny_params["download"], "sources": ["synthetic"]}, out=tmp_path / "local.json")
    assert json.loads((tmp_path / "local.json").read_text()) == {}


def test_a_stale_listing_is_refused_naming_the_fix(tiny_params, tmp_path):
    from hushkit.stages import download

    folder = tmp_path / "noise"
    for j in range(3):
        _tone(folder / "hum" / f"hum{j}.wav", 50 + j, seconds=2.0)
    params = {**tiny_params["download"], "sources": ["local:noise", "synthetic:speech"],
              "cache": str(tmp_path / "cache"), "local": {"noise": str(folder)}}
    scan.run(params, out=tmp_path / "local.json")
    listing = json.loads((tmp_path / "local.json").read_text())
    assert [f["path"] for f in listing["noise"]["files"]] == ["hum/hum0.wav", "hum/hum1.wav", "hum/hum2.wav"]
    moved = {**params, "local": {"noise": str(tmp_path / "other")}}
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match=r"local.json lists .*noise for noise, but params download.local.noise is "
                                         r".*other: list the folders again"):
        download.run(moved, out=tmp_path / "corpus", listing=tmp_path / "local.json")
