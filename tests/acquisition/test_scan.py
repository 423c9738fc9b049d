"""Listing a source folder: regular files with size and hash, every other entry with its reason, nothing but a
regular file ever opened, hashes reused while size and mtime are unchanged."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from hushkit.acquisition import scan
from hushkit.acquisition.scan import Entry, HashCache, from_listing, list_folder, to_listing
from hushkit.io import NotARegularFileError, sha256_file

SUFFIXES = (".wav", ".flac")


@pytest.fixture
def folder(tmp_path) -> Path:
    """Good files beside every kind of entry that is not one."""
    root = tmp_path / "speech"
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "a.wav").write_bytes(b"RIFF alice a" * 10)
    (root / "bob").mkdir()
    (root / "bob" / "b.flac").write_bytes(b"fLaC bob b" * 10)
    (root / "alias.wav").symlink_to(root / "alice" / "a.wav")  # a link to a regular file is that file
    (root / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    os.mkfifo(root / "x.wav")
    (root / "y.wav").mkdir()
    (root / "y.wav" / "inside.wav").write_bytes(b"RIFF inside")
    (root / "loop.wav").symlink_to("loop.wav")
    (root / "again").symlink_to(root, target_is_directory=True)  # a folder loop
    (root / "pipe-link.wav").symlink_to(root / "x.wav")
    return root


EXPECTED = {"dangling.wav": ("unreadable", "dangling symbolic link"), "x.wav": ("not_a_file", "named pipe"),
            "y.wav": ("not_a_file", "folder named like an audio file"), "loop.wav": ("unreadable", "link loop"),
            "again": ("unsupported", "link to a folder"), "pipe-link.wav": ("not_a_file", "link to a named pipe")}


def test_every_entry_is_listed_once_and_only_regular_files_are_read(folder, tmp_path):
    entries = list_folder(folder, audio_suffixes=SUFFIXES, hashes=HashCache(tmp_path / "hashes.csv"))
    by_path = {e.path: e for e in entries}
    assert [e.path for e in entries] == sorted(by_path)
    assert {p for p, e in by_path.items() if e.regular} == {"alias.wav", "alice/a.wav", "bob/b.flac"}
    for path, (reason, words) in EXPECTED.items():
        assert by_path[path].reason == reason and words in by_path[path].detail, by_path[path]
    assert by_path["alias.wav"].sha256 == by_path["alice/a.wav"].sha256 == sha256_file(folder / "alice" / "a.wav")
    assert by_path["bob/b.flac"].size == 100


def test_an_unreadable_file_and_folder_are_listed_as_unreadable(folder, tmp_path, monkeypatch):
    """A file that cannot be opened (chmod 000 for a user; as root, whom permissions do not stop, the same error made
    by hand) and a sub-folder that cannot be listed."""
    locked, closed = folder / "bob" / "locked.wav", folder / "closed"
    locked.write_bytes(b"RIFF locked")
    closed.mkdir()
    if os.geteuid() == 0:
        real_open, real_scandir = os.open, os.scandir

        def fake_open(path, *args, **kwargs):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        def fake_scandir(path):
            if Path(path) == closed:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "scandir", fake_scandir)
    else:
        locked.chmod(0)
        closed.chmod(0)
    try:
        entries = {e.path: e for e in list_folder(folder, audio_suffixes=SUFFIXES, hashes=HashCache(None))}
    finally:
        locked.chmod(0o644)
        closed.chmod(0o755)
    assert entries["bob/locked.wav"].reason == "unreadable" and "Permission denied" in entries["bob/locked.wav"].detail
    assert entries["closed"].reason == "unreadable" and "cannot list the folder" in entries["closed"].detail


def test_hashes_are_reused_until_size_or_mtime_change(folder, tmp_path, monkeypatch):
    cache = tmp_path / "hashes.csv"
    first = list_folder(folder, audio_suffixes=SUFFIXES, hashes=(hashes := HashCache(cache)))
    hashes.save()
    hashed = []
    monkeypatch.setattr(scan, "sha256_file", lambda path: hashed.append(Path(path).name) or sha256_file(path))
    second = list_folder(folder, audio_suffixes=SUFFIXES, hashes=HashCache(cache))
    assert second == first and hashed == []  # nothing read again
    target = folder / "bob" / "b.flac"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))  # touched, same bytes
    assert list_folder(folder, audio_suffixes=SUFFIXES, hashes=HashCache(cache)) == first and hashed == ["b.flac"]
    target.write_bytes(b"fLaC other bytes")
    changed = {e.path: e for e in list_folder(folder, audio_suffixes=SUFFIXES, hashes=HashCache(cache))}
    assert changed["bob/b.flac"].sha256 == hashlib.sha256(b"fLaC other bytes").hexdigest()


def test_a_damaged_hash_cache_costs_a_rehash_not_a_wrong_hash(folder, tmp_path):
    cache = tmp_path / "hashes.csv"
    cache.write_text("path,size\nnot,a number\n")
    entries = {e.path: e for e in list_folder(folder, audio_suffixes=SUFFIXES, hashes=HashCache(cache))}
    assert entries["alice/a.wav"].sha256 == sha256_file(folder / "alice" / "a.wav")


def test_the_listing_round_trips_and_names_no_time(folder, tmp_path):
    entries = list_folder(folder, audio_suffixes=SUFFIXES, hashes=HashCache(None))
    listing = to_listing("corpora/speech", entries)
    assert from_listing(json.loads(json.dumps(listing))) == entries
    assert set(listing["files"][0]) == {"path", "size", "sha256"}
    assert listing["folder"] == "corpora/speech"


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(NotADirectoryError, match="nope is not a folder"):
        list_folder(tmp_path / "nope", audio_suffixes=SUFFIXES)


def test_hashing_refuses_a_pipe_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "p.wav")
    with pytest.raises(NotARegularFileError, match=r"p.wav is a named pipe \(FIFO\)"):
        sha256_file(tmp_path / "p.wav")
    assert Entry("a").regular and not Entry("b", reason="unreadable").regular
