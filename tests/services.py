"""Real servers for the tests, each on 127.0.0.1 and a free port, started here and stopped on leaving the block:
`mlflow server` over a backend store, `prefect server`, a throw-away PostgreSQL cluster (Debian's `postgresql`) and
sshd with a throw-away key (Debian's `openssh-server`). A component that is not installed skips its tests with a
clear reason, and fails them under CI (`make test` installs both packages; see the Makefile's `services` target)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

INSTALL_HINT = "Debian: apt-get install {package}; `make test` does it as root or with sudo"


def missing(what: str, package: str) -> None:
    """Skip the test: `what` is not here; under CI (which installs it) fail instead."""
    message = f"{what} ({INSTALL_HINT.format(package=package)})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must install it")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {' '.join(map(str, cmd))}\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def _wait(ready, process: subprocess.Popen | None, what: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            raise RuntimeError(f"{what} did not start:\n{text}")
        time.sleep(0.2)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process's own session (a server and the workers it started), SIGKILL after 15 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


# --- mlflow server ---------------------------------------------------------------------------------------------
def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, root: Path, timeout: float = 480) -> Iterator[str]:
    """`mlflow server` on `backend_store_uri` with proxied artifact storage in root/artifacts (clients upload and
    download through the server: they need no access to its disk); yields its URL."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # no job runner (it serves GenAI evaluation jobs, which hushkit does not use): six fewer processes to start
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = root / "server.log"
    process = subprocess.Popen(
        [Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers",
         "1", "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(root / "artifacts")],
        cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait(lambda: _answers(f"{url}/health"), process, "mlflow server", log, timeout)
        except RuntimeError as err:
            pytest.fail(str(err))
        yield url
    finally:
        _stop_group(process)


# --- prefect server ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def prefect_server(home: Path, timeout: float = 480) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 with its database in `home` (PREFECT_HOME); yields its API URL. One server
    for many CLI calls: Prefect's ephemeral mode would start one per call."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    log = home / "server.log"
    process = subprocess.Popen([Path(sys.executable).parent / "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=home, env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        try:
            _wait(lambda: _answers(f"{url}/health"), process, "prefect server", log, timeout)
        except RuntimeError as err:
            pytest.fail(str(err))
        yield url
    finally:
        _stop_group(process)


# --- PostgreSQL ----------------------------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    """The bin/ folder of the newest PostgreSQL installed (Debian keeps it off PATH, under /usr/lib/postgresql)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if found else None


@contextlib.contextmanager
def postgres_database(name: str = "mlflow") -> Iterator[str]:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (trust authentication, no fsync: a test's data) holding an
    empty database `name`; yields its SQLAlchemy URL. initdb and postgres refuse to run as root: as root the
    cluster belongs to Debian's `postgres` user."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        missing("PostgreSQL is not installed", "postgresql")
    as_owner: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="hushkit-postgres-"))
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            missing("PostgreSQL's `postgres` user does not exist (needed to run it as root)", "postgresql")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, log, port = root / "data", root / "postgres.log", free_port()
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off")
    started = False
    try:
        _run([*as_owner, bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
              "--no-sync"], "initdb")
        _run([*as_owner, bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "120", "-o", options, "start"],
             "pg_ctl start")
        started = True
        _run([bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", name], "createdb")
        yield f"postgresql://postgres@127.0.0.1:{port}/{name}"
    finally:
        if started:
            subprocess.run([*as_owner, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


# --- sshd ------------------------------------------------------------------------------------------------------------
def _sshd() -> Path | None:
    found = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if Path(p).is_file()),
                                         None)
    return Path(found) if found else None


def _ssh_login(port: int, key: Path, user: str) -> bool:
    """True once sshd accepts `key` for `user` (a command run over the connection)."""
    done = subprocess.run(["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
                           "ConnectTimeout=5", f"{user}@127.0.0.1", "true"], capture_output=True, timeout=30)
    return done.returncode == 0


@contextlib.contextmanager
def ssh_server(root: Path) -> Iterator[dict]:
    """sshd on 127.0.0.1 from a config of its own (`sshd -f`): a fresh host key, and a fresh client key that is the
    only way in (no passwords, no PAM), for the user running the tests. Yields host, port, user and keyfile."""
    import getpass

    sshd = _sshd()
    if sshd is None or shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        missing("OpenSSH's server (sshd) is not installed", "openssh-server")
    root.mkdir(parents=True, exist_ok=True)
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    for key in (host_key, client_key):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hushkit-test", "-f", key], "ssh-keygen")
    authorized = root / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    port, user, log = free_port(), getpass.getuser(), root / "sshd.log"
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
        f"AllowUsers {user}", "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege-separation folder (its service makes it)
    process = subprocess.Popen([str(sshd), "-D", "-e", "-f", str(config)], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            _wait(lambda: _ssh_login(port, client_key, user), process, "sshd", log, timeout=60)
        except RuntimeError as err:
            pytest.fail(str(err))
        yield {"host": "127.0.0.1", "port": port, "user": user, "keyfile": str(client_key)}
    finally:
        _stop_group(process)
