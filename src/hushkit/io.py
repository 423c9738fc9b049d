"""Atomic file output: every writer goes through a temp file and a rename, so a killed stage leaves no half file."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions (they are shared)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


class OutputError(OSError):
    """An output that cannot be written, or that would replace something not asked to be replaced; the message
    names the output (never a temp file) and the reason."""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """`atomic_path` for an output a user named: an OS error while making its folder, writing the temp file or
    renaming it (a read-only folder, a file where a folder should be, a full disk) is an OutputError naming `path`.
    An OSError raised inside the block counts as a write failure too, so read inputs with their own errors."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror or err})") from err


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield a new temp folder beside `path` (same filesystem, so the final move is a rename); it becomes `path`
    only if the block succeeds, else it is removed: a failed run leaves `path` as it was.

    `path` may be missing or an empty folder. Anything else is refused up front (OutputError) unless `replace`:
    then the old folder is replaced as a whole, and only once the new one is complete."""
    named, path = path, Path(os.path.abspath(path))  # "." or "a/.." needs a real name and parent to sit beside
    if path.exists() and not path.is_dir():
        raise OutputError(f"{named}: is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not replace:
        raise OutputError(f"{named}: folder exists and is not empty; choose another or pass --overwrite to replace "
                          "it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise OutputError(f"{named}: cannot write ({err.strerror or err})") from err
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; outputs get the usual permissions
        if path.is_dir() and any(path.iterdir()):  # replace: move the old one aside, then the new one in
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except OSError:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)  # onto nothing or an empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


TABLE_DECIMALS = 6  # the decimals write_table keeps


def write_table(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """CSV with a fixed float format, so identical data gives byte-identical files."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=f"%.{TABLE_DECIMALS}f", lineterminator="\n")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


class NotARegularFileError(OSError):
    """The path names something other than a regular file (a folder, named pipe, socket or device)."""


def file_type(mode: int) -> str:
    """What a stat mode describes, in words: "a named pipe (FIFO)", "a folder", ..."""
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "not a regular file"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a regular file. Anything else raises NotARegularFileError without being read: the file is opened
    non-blocking and checked first, so a named pipe or a device never hangs the caller."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFileError(f"{path} is {file_type(mode)}, not a regular file")
        fh = open(fd, "rb")  # owns fd from here
    except BaseException:
        os.close(fd)
        raise
    digest = hashlib.sha256()
    with fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
