"""List a source folder without opening anything but regular files: every regular file (also through a symbolic
link) with its size and, on request, its content hash; every other entry with the reason it cannot be ingested.

    unreadable   a dangling symbolic link, a symbolic link loop, a file or folder that cannot be opened or listed
    not_a_file   a named pipe, socket or device (never opened: reading a pipe waits forever), or a folder named like
                 an audio file (x.wav/: not descended, so its name cannot pass for a file's)
    unsupported  a symbolic link to a folder (not followed: no loops, nothing outside the folder)

The `scan` stage writes this listing for the `local` source's folders and the download stage depends on the listing,
not on the folders: DVC hashing the folders itself would hang on a named pipe and fail on a dangling link. Hashes are
cached by (size, mtime_ns), so an unchanged folder is listed again without being read; the listing holds no times,
so it is byte-identical while the files' contents are.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from hushkit.io import NotARegularFileError, file_type, read_table, sha256_file, write_table

HASH_COLUMNS = ["path", "size", "mtime_ns", "sha256"]


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the folder, POSIX separators
    size: int | None = None  # regular files only
    sha256: str = ""  # regular files, when hashed
    reason: str = ""  # "" for a regular file, else why it cannot be ingested
    detail: str = ""

    @property
    def regular(self) -> bool:
        return not self.reason


class HashCache:
    """sha256 by absolute path, reused while a file's size and mtime_ns are unchanged. `save` keeps only the files
    looked up since `load` (a removed file's entry goes)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known: dict[str, tuple[int, int, str]] = {}
        self.used: dict[str, tuple[int, int, str]] = {}
        if path is not None and Path(path).is_file():
            try:
                table = read_table(path)
                self.known = {str(r.path): (int(r.size), int(r.mtime_ns), str(r.sha256)) for r in table.itertuples()}
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, AttributeError, ValueError):
                self.known = {}  # a damaged cache costs hashing again, never a wrong hash

    def sha256(self, path: Path, info: os.stat_result) -> str:
        key = str(Path(path).absolute())
        cached = self.known.get(key)
        if cached and cached[:2] == (info.st_size, info.st_mtime_ns):
            sha = cached[2]
        else:
            sha = sha256_file(path)
        self.used[key] = (info.st_size, info.st_mtime_ns, sha)
        return sha

    def save(self) -> None:
        if self.path is not None:
            rows = [{"path": k, "size": v[0], "mtime_ns": v[1], "sha256": v[2]} for k, v in sorted(self.used.items())]
            write_table(self.path, pd.DataFrame(rows, columns=HASH_COLUMNS))


def list_folder(folder: Path, *, audio_suffixes: Iterable[str], hashes: HashCache | None = None) -> list[Entry]:
    """Every entry under `folder` (sorted by path): regular files with their size (and sha256 when `hashes` is
    given), anything else with its reason. Only regular files are ever opened."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    suffixes = {s.lower() for s in audio_suffixes}
    entries: list[Entry] = []
    try:
        _walk(folder, "", suffixes, hashes, entries)
    except OSError as err:  # the folder itself (a sub-folder that cannot be listed is an entry)
        raise ValueError(f"cannot list the folder {folder}: {err.strerror or err}") from None
    return sorted(entries, key=lambda e: e.path)


def _walk(folder: Path, prefix: str, suffixes: set[str], hashes: HashCache | None, entries: list[Entry]) -> None:
    with os.scandir(folder) as listing:
        children = sorted(listing, key=lambda e: e.name)
    for child in children:
        rel, path = prefix + child.name, Path(child.path)
        try:
            info = os.lstat(path)
        except OSError as err:  # gone since the listing, or not even statable
            entries.append(Entry(rel, reason="unreadable", detail=f"cannot stat it: {err.strerror or err}"))
            continue
        if stat.S_ISLNK(info.st_mode):
            entries.append(_through_link(path, rel, hashes))
        elif stat.S_ISDIR(info.st_mode):
            if Path(child.name).suffix.lower() in suffixes:
                entries.append(Entry(rel, reason="not_a_file", detail="a folder named like an audio file: not "
                                                                      "descended (rename it to ingest what is inside)"))
                continue
            try:
                _walk(path, rel + "/", suffixes, hashes, entries)
            except OSError as err:
                entries.append(Entry(rel, reason="unreadable", detail=f"cannot list the folder: "
                                                                      f"{err.strerror or err}"))
        elif stat.S_ISREG(info.st_mode):
            entries.append(_regular(path, rel, info, hashes))
        else:
            entries.append(Entry(rel, reason="not_a_file", detail=f"{file_type(info.st_mode)}, not a regular file "
                                                                  "(never opened)"))


def _through_link(path: Path, rel: str, hashes: HashCache | None) -> Entry:
    target = os.readlink(path)
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return Entry(rel, reason="unreadable", detail=f"symbolic link loop (-> {target})")
        if err.errno == errno.ENOENT:
            return Entry(rel, reason="unreadable", detail=f"dangling symbolic link: its target {target} does not "
                                                          "exist")
        return Entry(rel, reason="unreadable", detail=f"cannot follow the symbolic link to {target}: "
                                                      f"{err.strerror or err}")
    if stat.S_ISDIR(info.st_mode):
        return Entry(rel, reason="unsupported", detail="symbolic link to a folder; not followed")
    if not stat.S_ISREG(info.st_mode):
        return Entry(rel, reason="not_a_file", detail=f"symbolic link to {file_type(info.st_mode)}, not a regular "
                                                      "file (never opened)")
    return _regular(path, rel, info, hashes)


def _regular(path: Path, rel: str, info: os.stat_result, hashes: HashCache | None) -> Entry:
    if hashes is None:
        return Entry(rel, size=info.st_size)
    try:
        return Entry(rel, size=info.st_size, sha256=hashes.sha256(path, info))
    except NotARegularFileError as err:  # replaced by a pipe or a device since it was looked at
        return Entry(rel, reason="not_a_file", detail=str(err).replace(str(path), "it"))
    except OSError as err:
        return Entry(rel, reason="unreadable", detail=f"cannot open the file: {err.strerror or err}")


# -- the listing the scan stage writes -------------------------------------------------------------------------------

def to_listing(folder: str, entries: list[Entry]) -> dict[str, Any]:
    """One folder's listing: the folder as params name it, its regular files and its rejected entries."""
    return {"folder": folder,
            "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries if e.regular],
            "rejected": [{"path": e.path, "reason": e.reason, "detail": e.detail} for e in entries if not e.regular]}


def from_listing(listing: dict[str, Any]) -> list[Entry]:
    entries = [Entry(**item) for item in listing["files"]] + [Entry(**item) for item in listing["rejected"]]
    return sorted(entries, key=lambda e: e.path)
