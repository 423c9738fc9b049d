"""Downloads that resume, verify and never keep a bad file (archives are unpacked by hushkit.acquisition.archives).

`fetch(resource, cache)` returns `cache/<filename>` once it verifies (sha256 / md5 / size where known; otherwise the
sha256 recorded on first download in `cache/<filename>.sha256`, trust on first use). Bytes arrive in
`cache/<filename>.part`, which survives a dropped connection or a killed process and is resumed with a Range
request; only a verified file is renamed onto the final name, and a file that fails verification is deleted.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from hushkit.errors import UserError
from hushkit.io import atomic_path

log = logging.getLogger(__name__)

USER_AGENT = "hushkit-fetch/0.1 (python urllib)"
MAX_BACKOFF = 60.0  # seconds; the cap on the exponential wait between retries
RETRY_STATUS = frozenset({408, 425, 429})  # 4xx that mean "try again later", not "this URL is wrong"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_HEX = re.compile(r"[0-9a-f]+")


class DownloadError(UserError, RuntimeError):
    """A download or extraction that failed; the message names the URL or file and the reason."""


@dataclass(frozen=True)
class Resource:
    """One downloadable file: where it lives, its name in the cache and what it must hash to (when published)."""

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if not self.filename or "/" in self.filename or "\\" in self.filename or self.filename in (".", ".."):
            raise ValueError(f"{self.url}: filename {self.filename!r} must be a plain file name")
        for name, digest, length in (("sha256", self.sha256, 64), ("md5", self.md5, 32)):
            if digest is not None and (len(digest) != length or not _HEX.fullmatch(digest.lower())):
                raise ValueError(f"{self.url}: {name} {digest!r} is not a {length}-digit hex digest")

    @property
    def verified(self) -> bool:
        """True when a published checksum pins the content; False means trust on first use."""
        return bool(self.sha256 or self.md5)


class _Transient(Exception):
    """A failure worth retrying (dropped connection, timeout, 5xx); the bytes already on disk are kept."""


def fetch(resource: Resource, cache: Path, *, retries: int = 5, backoff: float = 1.0, timeout: float = 30.0,
          progress: bool = True, chunk: int = 1 << 20) -> Path:
    """Return `cache/<resource.filename>`, downloading (and resuming) it only when no verified copy is cached."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / resource.filename
    if final.is_file():
        problem, sha256 = _check(resource, final, cache, chunk)
        if problem is None:
            if not resource.verified and not _tofu_path(cache, resource).exists():
                _record_tofu(cache, resource, sha256)  # a cached file whose record was removed: pin it again
            return final
        log.warning("%s: cached file failed verification (%s); downloading it again", final, problem)
        final.unlink()

    part = _part_path(final)
    stale = part.exists()  # left by an earlier run: if the result is bad, it may be that part's fault
    while True:
        _download(resource, part, retries=retries, backoff=backoff, timeout=timeout, progress=progress, chunk=chunk)
        problem, sha256 = _check(resource, part, cache, chunk)
        if problem is None:
            break
        part.unlink(missing_ok=True)  # a bad file is never kept, not even as a part to resume
        if not stale:
            raise DownloadError(f"{resource.url}: {problem}; the bad download was deleted")
        log.warning("%s: %s; the partial file from an earlier run was bad, downloading from scratch", resource.url,
                    problem)
        stale = False
    os.replace(part, final)
    if not resource.verified and not _tofu_path(cache, resource).exists():
        _record_tofu(cache, resource, sha256)
    return final


def _part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


def _tofu_path(cache: Path, resource: Resource) -> Path:
    return cache / f"{resource.filename}.sha256"


def _record_tofu(cache: Path, resource: Resource, sha256: str) -> None:
    path = _tofu_path(cache, resource)
    with atomic_path(path) as tmp:
        tmp.write_text(f"{sha256}  {resource.filename}\n")  # sha256sum format: `sha256sum -c` can check it
    log.warning("%s: unverified resource (no published checksum); recorded sha256 %s in %s and will verify "
                "against it from now on (trust on first use)", resource.url, sha256, path)


def _read_tofu(cache: Path, resource: Resource) -> str | None:
    path = _tofu_path(cache, resource)
    if not path.is_file():
        return None
    words = path.read_text().split()
    if not words or len(words[0]) != 64 or not _HEX.fullmatch(words[0].lower()):
        raise DownloadError(f"{path}: not a sha256 record for {resource.filename}; delete it to record a new one")
    return words[0].lower()


def _check(resource: Resource, path: Path, cache: Path, chunk: int) -> tuple[str | None, str]:
    """(problem or None, sha256) for `path` against the resource's size and digests (or its first-use record)."""
    size = path.stat().st_size
    if resource.size is not None and size != resource.size:
        return f"size mismatch for {resource.filename}: expected {resource.size} bytes, got {size}", ""
    sha256, md5 = _digests(path, chunk)
    if resource.sha256 and sha256 != resource.sha256.lower():
        return f"sha256 mismatch for {resource.filename}: expected {resource.sha256.lower()}, got {sha256}", sha256
    if resource.md5 and md5 != resource.md5.lower():
        return f"md5 mismatch for {resource.filename}: expected {resource.md5.lower()}, got {md5}", sha256
    if not resource.verified:
        recorded = _read_tofu(cache, resource)
        if recorded is not None and recorded != sha256:
            record = _tofu_path(cache, resource)
            return (f"sha256 mismatch for {resource.filename}: expected {recorded} (recorded on first download in "
                    f"{record}; delete that file to accept the new content), got {sha256}"), sha256
    return None, sha256


def _digests(path: Path, chunk: int) -> tuple[str, str]:
    """sha256 and md5 in one pass (md5 because some corpora publish nothing else)."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.hexdigest()


def _download(resource: Resource, part: Path, *, retries: int, backoff: float, timeout: float, progress: bool,
              chunk: int) -> None:
    """Bring `part` to the full size the server reports, retrying transient failures with exponential backoff."""
    attempt = 0
    with _Bar(progress, resource.filename) as bar:
        while True:
            before = _size(part)
            try:
                _transfer(resource, part, timeout=timeout, chunk=chunk, bar=bar)
                return
            except _Transient as err:
                reason = str(err)
            if _size(part) > before:
                attempt = 0  # bytes arrived: the link is flaky, not dead, so the retry budget starts again
            attempt += 1
            if attempt > retries:
                kept = f"; {part} ({_size(part)} bytes) is kept to resume later" if part.exists() else ""
                raise DownloadError(f"{resource.url}: giving up after {retries} retries: {reason}{kept}")
            delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF)
            log.warning("%s: %s; retry %d/%d in %.2f s", resource.url, reason, attempt, retries, delay)
            time.sleep(delay)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _transfer(resource: Resource, part: Path, *, timeout: float, chunk: int, bar: _Bar) -> None:
    """One request: append what the server sends after the bytes on disk. Raises _Transient to be retried."""
    url = resource.url
    offset = _size(part)
    if resource.size is not None and offset > resource.size:
        part.unlink()  # longer than the file can be: not a prefix of it
        offset = 0
    if resource.size is not None and offset == resource.size and offset > 0:
        return  # complete already (an earlier run was killed before the rename); fetch verifies it
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            return  # nothing past our bytes: the part is complete or bad; fetch verifies and restarts if bad
        if err.code >= 500 or err.code in RETRY_STATUS:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:  # URLError (DNS, refused), timeouts, resets
        raise _Transient(_reason(err)) from err

    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start} instead of {offset}; restarting from 0")
            mode = "ab"
        else:  # 200: the whole file, because we asked from 0 or because the server ignored the Range
            if offset:
                log.info("%s: server ignored the Range request; restarting from byte 0", url)
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if resource.size is not None and total is not None and total != resource.size:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: server reports {total} bytes for {resource.filename}, expected "
                                f"{resource.size}; nothing was kept")
        received = _stream(response, part, mode, url=url, chunk=chunk, bar=bar, total=total, offset=offset)
    if total is not None and offset + received < total:
        raise _Transient(f"connection closed after {offset + received} of {total} bytes")


def _stream(response: Any, part: Path, mode: str, *, url: str, chunk: int, bar: _Bar, total: int | None,
            offset: int) -> int:
    """Copy the body into `part`; network errors are transient, disk errors are not (retrying cannot fix them)."""
    received = 0
    read = getattr(response, "read1", response.read)  # read1: what has arrived, so a stall loses nothing received
    bar.reset(total, offset)
    try:
        fh = open(part, mode)
    except OSError as err:
        raise DownloadError(f"{url}: cannot write {part}: {err}") from err
    with fh:
        while True:
            try:
                block = read(chunk)
            except (OSError, http.client.HTTPException) as err:
                raise _Transient(f"connection lost after {offset + received} bytes ({_reason(err)})") from err
            if not block:
                return received
            try:
                fh.write(block)
            except OSError as err:
                raise DownloadError(f"{url}: cannot write {part}: {err}") from err
            received += len(block)
            bar.advance(len(block))


def _content_range(header: str | None) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        raise _Transient(f"206 response with an unusable Content-Range {header!r}")
    return int(match[1]), None if match[3] == "*" else int(match[3])


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        reason = err.reason
        return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class _Bar:
    """Bytes, speed and time left on stderr (rich); a no-op when disabled."""

    def __init__(self, enabled: bool, label: str) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                  disable=not enabled)
        self._label = label
        self._task: Any = None

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def reset(self, total: int | None, completed: int) -> None:
        if self._task is None:
            self._task = self._progress.add_task(self._label, total=total, completed=completed)
        else:
            self._progress.update(self._task, total=total, completed=completed)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)
