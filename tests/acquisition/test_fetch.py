"""fetch/extract against a local HTTP server (127.0.0.1 only): resume, retry, verify, cache, trust on first use,
atomic extraction and refusal of path traversal."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hushkit.acquisition.archives import EXTRACTED_MARKER, extract
from hushkit.acquisition.fetch import DownloadError, Resource, fetch

FAST = {"backoff": 0.01, "timeout": 5.0, "progress": False, "chunk": 4096}


# ----------------------------------------------------------------------------------------------------- the server


class ServerState:
    """What the handler serves and how it misbehaves; every request is logged as (path, headers)."""

    def __init__(self) -> None:
        self.base = ""
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.statuses: dict[str, list[int]] = {}  # answered (in order) before the file is served
        self.drop_after: dict[str, int] = {}  # next response to this path closes the connection after N bytes
        self.stall: dict[str, float] = {}  # next response sends half, then goes quiet this many seconds
        self.ignore_range: set[str] = set()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base + path

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.requests.append((self.path, dict(self.headers)))
            queued = state.statuses.get(self.path)
            status = queued.pop(0) if queued else None
            drop = state.drop_after.pop(self.path, None)
            stall = state.stall.pop(self.path, None)
        if status is not None:
            self.send_error(status)
            return
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and self.path not in state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            if drop is not None:
                self.wfile.write(payload[:drop])
                self.wfile.flush()
                self.close_connection = True  # the socket closes with the body short of Content-Length
                return
            if stall is not None:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                time.sleep(stall)
                self.close_connection = True
                return
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first, as the tests intend


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    """urllib honours *_proxy variables; the tests must reach 127.0.0.1 directly and nothing else."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    state = ServerState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# -------------------------------------------------------------------------------------------------------- archives


def _wav_bytes(freq: float, sr: int = 16000) -> bytes:
    """0.1 s of a tone in noise (noise, so the archives do not compress to almost nothing)."""
    t = np.arange(int(0.1 * sr)) / sr
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.random.default_rng(int(freq)).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, audio.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


WAVS = {f"corpus/sub/clip_{i}.wav": _wav_bytes(200.0 + 100 * i) for i in range(3)}


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_bytes(members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    """A .tar.gz; `links` maps member name -> (tarfile.SYMTYPE or LNKTYPE, target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def zip_data() -> bytes:
    return _zip_bytes(WAVS)


@pytest.fixture(scope="module")
def tar_data() -> bytes:
    return _tar_bytes(WAVS)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part") or "extracting" in p.name)


# ------------------------------------------------------------------------------------------------------------ fetch


def test_download_verifies_and_a_cache_hit_makes_no_request(server, zip_data, tmp_path):
    server.files["/a.zip"] = zip_data
    res = Resource(server.url("/a.zip"), "a.zip", sha256=_sha256(zip_data), size=len(zip_data))
    path = fetch(res, tmp_path, **FAST)
    assert path == tmp_path / "a.zip" and path.read_bytes() == zip_data
    assert _leftovers(tmp_path) == [] and not (tmp_path / "a.zip.sha256").exists()
    assert fetch(res, tmp_path, **FAST) == path
    assert server.count("/a.zip") == 1


def test_dropped_connection_resumes_with_range(server, tar_data, tmp_path):
    server.files["/a.tgz"] = tar_data
    server.drop_after["/a.tgz"] = 1000
    res = Resource(server.url("/a.tgz"), "a.tgz", sha256=_sha256(tar_data))
    path = fetch(res, tmp_path, **FAST)
    assert path.read_bytes() == tar_data
    (first, first_headers), (second, second_headers) = server.requests
    assert "Range" not in first_headers and second_headers["Range"] == "bytes=1000-"


def test_server_that_ignores_range_restarts_from_zero(server, tar_data, tmp_path):
    server.files["/a.tgz"] = tar_data
    server.drop_after["/a.tgz"] = 1000
    server.ignore_range.add("/a.tgz")
    path = fetch(Resource(server.url("/a.tgz"), "a.tgz", sha256=_sha256(tar_data)), tmp_path, **FAST)
    assert path.read_bytes() == tar_data  # not the first 1000 bytes twice
    assert server.requests[1][1]["Range"] == "bytes=1000-"


def test_404_fails_at_once_naming_the_url(server, tmp_path):
    url = server.url("/missing.zip")
    with pytest.raises(DownloadError, match=re.escape(f"{url}: HTTP 404 Not Found")):
        fetch(Resource(url, "missing.zip"), tmp_path, **FAST)
    assert server.count("/missing.zip") == 1 and _leftovers(tmp_path) == []


def test_5xx_is_retried_then_succeeds(server, zip_data, tmp_path):
    server.files["/a.zip"] = zip_data
    server.statuses["/a.zip"] = [503, 500]
    fetch(Resource(server.url("/a.zip"), "a.zip", sha256=_sha256(zip_data)), tmp_path, **FAST)
    assert server.count("/a.zip") == 3


def test_gives_up_after_the_retries(server, zip_data, tmp_path):
    server.files["/a.zip"] = zip_data
    server.statuses["/a.zip"] = [503] * 10
    with pytest.raises(DownloadError, match=r"/a.zip: giving up after 2 retries: HTTP 503"):
        fetch(Resource(server.url("/a.zip"), "a.zip"), tmp_path, retries=2, **FAST)
    assert server.count("/a.zip") == 3


def test_timeout_is_retried(server, zip_data, tmp_path):
    server.files["/a.zip"] = zip_data
    server.stall["/a.zip"] = 1.0
    res = Resource(server.url("/a.zip"), "a.zip", sha256=_sha256(zip_data))
    path = fetch(res, tmp_path, **{**FAST, "timeout": 0.2})
    assert path.read_bytes() == zip_data
    assert server.requests[1][1]["Range"] == f"bytes={len(zip_data) // 2}-"


def test_refused_connection_is_retried_then_reported(tmp_path):
    with socket.socket() as sock:  # a port on 127.0.0.1 that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.zip"
    with pytest.raises(DownloadError, match=re.escape(url) + ".*giving up after 1 retries"):
        fetch(Resource(url, "a.zip"), tmp_path, retries=1, **FAST)


def test_checksum_mismatch_keeps_nothing(server, zip_data, tmp_path):
    server.files["/a.zip"] = b"not the archive you are looking for" * 100
    url = server.url("/a.zip")
    with pytest.raises(DownloadError) as err:
        fetch(Resource(url, "a.zip", sha256=_sha256(zip_data)), tmp_path, **FAST)
    message = str(err.value)
    assert url in message and _sha256(zip_data) in message and _sha256(server.files["/a.zip"]) in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_md5_only_and_size(server, zip_data, tmp_path):
    server.files["/a.zip"] = zip_data
    md5 = hashlib.md5(zip_data).hexdigest()
    assert fetch(Resource(server.url("/a.zip"), "a.zip", md5=md5), tmp_path / "ok", **FAST).read_bytes() == zip_data
    with pytest.raises(DownloadError, match=r"md5 mismatch.*expected 0{32}"):
        fetch(Resource(server.url("/a.zip"), "a.zip", md5="0" * 32), tmp_path / "bad", **FAST)
    with pytest.raises(DownloadError, match=rf"server reports {len(zip_data)} bytes.*expected 12"):
        fetch(Resource(server.url("/a.zip"), "a.zip", size=12), tmp_path / "size", **FAST)
    assert list((tmp_path / "bad").iterdir()) == [] and list((tmp_path / "size").iterdir()) == []


def test_trust_on_first_use(server, zip_data, tmp_path, caplog):
    server.files["/a.zip"] = zip_data
    res = Resource(server.url("/a.zip"), "a.zip")
    with caplog.at_level(logging.WARNING, logger="hushkit.acquisition.fetch"):
        path = fetch(res, tmp_path, **FAST)
    assert "unverified" in caplog.text and "trust on first use" in caplog.text
    assert (tmp_path / "a.zip.sha256").read_text() == f"{_sha256(zip_data)}  a.zip\n"

    path.write_bytes(b"bit rot")  # a damaged cache copy is fetched again and checked against the record
    assert fetch(res, tmp_path, **FAST).read_bytes() == zip_data
    assert server.count("/a.zip") == 2

    path.unlink()  # upstream changed: the record no longer matches, so nothing is kept
    server.files["/a.zip"] = zip_data[::-1]
    with pytest.raises(DownloadError, match=r"recorded on first download.*a\.zip\.sha256"):
        fetch(res, tmp_path, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip.sha256"]


def test_complete_part_from_a_killed_run_is_verified_after_416(server, zip_data, tmp_path):
    server.files["/a.zip"] = zip_data
    (tmp_path / "a.zip.part").write_bytes(zip_data)
    path = fetch(Resource(server.url("/a.zip"), "a.zip", sha256=_sha256(zip_data)), tmp_path, **FAST)
    assert path.read_bytes() == zip_data and server.requests[0][1]["Range"] == f"bytes={len(zip_data)}-"


def test_bad_part_from_a_killed_run_is_restarted(server, zip_data, tmp_path):
    server.files["/a.zip"] = zip_data
    (tmp_path / "a.zip.part").write_bytes(b"x" * len(zip_data))  # full length, wrong bytes: 416, then bad
    path = fetch(Resource(server.url("/a.zip"), "a.zip", sha256=_sha256(zip_data)), tmp_path, **FAST)
    assert path.read_bytes() == zip_data
    assert "Range" not in server.requests[-1][1] and _leftovers(tmp_path) == []


def test_resource_rejects_paths_and_bad_digests():
    with pytest.raises(ValueError, match="plain file name"):
        Resource("http://127.0.0.1/x", "../x.zip")
    with pytest.raises(ValueError, match="md5"):
        Resource("http://127.0.0.1/x", "x.zip", md5="abc")


# ---------------------------------------------------------------------------------------------------------- extract


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_extract_zip_and_tar_by_content(fmt, zip_data, tar_data, tmp_path):
    archive = tmp_path / "download.bin"  # the name says nothing: the content decides
    archive.write_bytes(zip_data if fmt == "zip" else tar_data)
    dest = extract(archive, tmp_path / "out")
    for name, data in WAVS.items():
        assert (dest / name).read_bytes() == data
        assert sf.info(dest / name).frames == 1600
    assert (dest / EXTRACTED_MARKER).is_file()
    umask = os.umask(0o022)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o777 & ~umask  # like any directory, not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["download.bin", "out"]

    (dest / "corpus/sub/clip_0.wav").unlink()  # the marker says complete: a second call does not extract again
    assert extract(archive, tmp_path / "out") == dest and not (dest / "corpus/sub/clip_0.wav").exists()


def test_changed_archive_replaces_the_tree(zip_data, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_data)
    dest = extract(archive, tmp_path / "out")
    archive.write_bytes(_zip_bytes({"other/new.wav": _wav_bytes(300.0)}))
    extract(archive, dest)
    assert (dest / "other/new.wav").is_file() and not (dest / "corpus").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "out"]


@pytest.mark.parametrize("make, member", [
    (lambda: _zip_bytes({"ok.wav": b"1", "../evil.wav": b"2"}), "../evil.wav"),
    (lambda: _tar_bytes({"ok.wav": b"1", "../evil.wav": b"2"}), "../evil.wav"),
    (lambda: _tar_bytes({"/tmp/evil.wav": b"2"}), "/tmp/evil.wav"),
    (lambda: _tar_bytes({"a/ok.wav": b"1"}, {"a/link": (tarfile.SYMTYPE, "../../outside")}), "a/link"),
    (lambda: _tar_bytes({"ok.wav": b"1"}, {"hard": (tarfile.LNKTYPE, "../etc/passwd")}), "hard"),
])
def test_path_traversal_is_refused(make, member, tmp_path):
    archive = tmp_path / "evil.bin"
    archive.write_bytes(make())
    with pytest.raises(DownloadError, match=re.escape(repr(member))):
        extract(archive, tmp_path / "sub" / "out")
    assert list((tmp_path / "sub").iterdir()) == []  # no dest, no temp tree
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.bin", "sub"]


def test_links_inside_the_tree_are_fine(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_tar_bytes({"a/x.wav": b"1"}, {"a/y.wav": (tarfile.SYMTYPE, "x.wav")}))
    dest = extract(archive, tmp_path / "out")
    assert (dest / "a/y.wav").read_bytes() == b"1"


def test_unknown_format_and_truncated_archive(tar_data, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"hello, I am not an archive" * 10)
    with pytest.raises(DownloadError, match=re.escape(f"{junk}: unknown archive format")):
        extract(junk, tmp_path / "out")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(_tar_bytes({f"f{i}.wav": _wav_bytes(100.0 + i) for i in range(20)})[:-600])
    with pytest.raises(DownloadError, match=re.escape(str(broken))):
        extract(broken, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tar.gz", "junk.zip"]


def test_foreign_destination_is_not_overwritten(zip_data, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_data)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(DownloadError, match="not made by extract"):
        extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep me"
