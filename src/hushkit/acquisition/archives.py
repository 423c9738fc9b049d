"""Archive extraction that is atomic and refuses path traversal.

`extract(archive, dest)` unpacks zip or tar (sniffed from the content) into a temp dir beside `dest`, refusing
members that would land outside it, and renames the finished tree onto `dest` with a marker inside, so an
interrupted extraction leaves no half tree and a repeated call is a no-op.
"""
from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from hushkit.acquisition.fetch import DownloadError

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), restored at once
os.umask(_UMASK)

EXTRACTED_MARKER = ".hushkit-extracted.json"
_TMP_TAG = ".extracting-"
_DRIVE = re.compile(r"[A-Za-z]:(/|$)")  # a Windows drive path is absolute too


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a zip or tar archive (any compression tarfile reads) into `dest`, atomically; return `dest`."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DownloadError(f"{archive}: no such archive")
    st = archive.stat()
    stamp = {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = dest / EXTRACTED_MARKER
    if dest.exists():
        if _read_marker(marker) == stamp:
            return dest  # extracted from this very archive already
        if not marker.is_file():
            raise DownloadError(f"{dest}: exists but was not made by extract() (no {EXTRACTED_MARKER}); "
                                f"remove it or extract {archive.name} elsewhere")
    fmt = _sniff(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{_TMP_TAG}", dir=dest.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; the extracted tree is shared like any other output
        (_extract_zip if fmt == "zip" else _extract_tar)(archive, tmp)
        (tmp / EXTRACTED_MARKER).write_text(json.dumps(stamp, sort_keys=True) + "\n")
        _replace_dir(tmp, dest)
    except DownloadError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"{archive}: extraction failed ({type(err).__name__}: {err}); nothing was kept") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _sniff(archive: Path) -> str:
    """By content, not extension: GitHub and DataShare serve archives under names that say little."""
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        pass  # a compressed stream that is not a tar (or is damaged) is simply not one we know
    raise DownloadError(f"{archive}: unknown archive format (neither zip nor tar, plain or gz/bz2/xz-compressed)")


def _remove_stale_temps(dest: Path) -> None:
    """Temp trees of an extraction that was killed (SIGKILL leaves no chance to clean up)."""
    prefix = f".{dest.name}{_TMP_TAG}"
    for path in dest.parent.iterdir():
        if path.name.startswith(prefix) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _replace_dir(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}{_TMP_TAG}old-", dir=dest.parent))
    os.replace(dest, old / dest.name)  # the old tree (made by us, from an older archive) steps aside first
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _member_path(name: str, archive: Path) -> PurePosixPath:
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if norm.startswith("/") or _DRIVE.match(norm) or ".." in path.parts:
        raise DownloadError(f"{archive}: refusing member {name!r}: an absolute path or '..' would write outside "
                            "the destination (path traversal)")
    return path


def _check_link(member: PurePosixPath, target: str, *, hard: bool, archive: Path, name: str) -> None:
    """Refuse a link whose target resolves outside the tree (hard links are relative to the root)."""
    norm = target.replace("\\", "/")
    parts: list[str] = []
    escapes = norm.startswith("/") or bool(_DRIVE.match(norm))
    for piece in (PurePosixPath() if hard else member.parent).parts + PurePosixPath(norm).parts:
        if piece in ("", ".", "/"):
            continue
        if piece == "..":
            if not parts:
                escapes = True
                break
            parts.pop()
        else:
            parts.append(piece)
    if escapes:
        raise DownloadError(f"{archive}: refusing member {name!r}: link to {target!r} points outside the destination")


def _extract_zip(archive: Path, tmp: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check every name before writing anything
            path = _member_path(info.filename, archive)
            if stat.S_ISLNK(info.external_attr >> 16):
                target = zf.read(info).decode("utf-8", "replace")
                _check_link(path, target, hard=False, archive=archive, name=info.filename)
        zf.extractall(tmp)


def _extract_tar(archive: Path, tmp: Path) -> None:
    # The "data" filter (Python >= 3.11.4) re-checks on the real file system, e.g. links through symlinked dirs.
    kwargs: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:  # one pass: a multi-GB .tar.gz is decompressed once
            path = _member_path(member.name, archive)
            if member.issym() or member.islnk():
                _check_link(path, member.linkname, hard=member.islnk(), archive=archive, name=member.name)
            elif not (member.isfile() or member.isdir()):
                raise DownloadError(f"{archive}: refusing member {member.name!r}: device or fifo, not a file")
            try:
                tf.extract(member, tmp, **kwargs)
            except tarfile.FilterError as err:
                raise DownloadError(f"{archive}: refusing member {member.name!r}: {err}") from err
