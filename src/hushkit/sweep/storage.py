"""Where a sweep's study lives: an Optuna RDB storage that several processes, and with a database server several
hosts, work on at once.

The default is `sqlite:///optuna.db` in the repository, beside the MLflow store (`sqlite:///mlflow.db`); a team
points every host at one PostgreSQL database (`postgresql://user:password@host/optuna`, the driver comes with the
`pipeline` extra). A relative sqlite path means the user's repository, also inside a DVC experiment's copy.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

from hushkit.errors import UserError
from hushkit.workspace import repo_root

DEFAULT_STORAGE = "sqlite:///optuna.db"
STORAGE_ENV = "HUSHKIT_SWEEP_STORAGE"   # overrides the default; `--storage` overrides both
SQLITE = "sqlite:///"
# Seconds a process waits for another's write to a sqlite study (trials, intermediate values, heartbeats).
SQLITE_BUSY_TIMEOUT = 60
OPEN_ATTEMPTS = 5   # tries at opening a study's database (see open_storage)


class StorageError(UserError):
    """The study's database cannot be opened (the message names it, without its password, and why)."""


def storage_url(url: str | None = None, repo: str | os.PathLike | None = None) -> str:
    """`url`, else STORAGE_ENV, else the default; a relative sqlite path made absolute against the user's repository
    (`repo`, default: the current folder), so every process of a study, and every trial's copy, opens one file."""
    chosen = url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    if not chosen.startswith(SQLITE) or os.path.isabs(chosen[len(SQLITE):]):
        return chosen
    return SQLITE + str(Path(repo_root(repo)) / chosen[len(SQLITE):])


def open_storage(url: str, *, heartbeat_seconds: int | None = None) -> Any:
    """An optuna RDBStorage on `url` (creating its tables on first use). With `heartbeat_seconds`, the trials this
    process runs beat that often, and a trial whose process has not beaten for three times as long (killed, host
    lost) is marked failed by the next process that starts a trial."""
    optuna = import_optuna()
    from sqlalchemy.exc import SQLAlchemyError

    engine: dict[str, Any] = {}
    if url.startswith(SQLITE):
        engine["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    heartbeat: dict[str, Any] = {}
    if heartbeat_seconds:
        heartbeat = {"heartbeat_interval": heartbeat_seconds, "grace_period": 3 * heartbeat_seconds}
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():   # heartbeats are "experimental" in optuna; the interface is pinned
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **heartbeat)
        except SQLAlchemyError as err:
            # Processes opening a new database at once race to create its tables and record their version; the
            # loser finds them made on its next attempt.
            attempt += 1
            if attempt == OPEN_ATTEMPTS:
                raise StorageError(f"cannot open the sweep storage {redacted(url)}: "
                                   f"{str(err).splitlines()[0]}") from None
            time.sleep(0.5 * attempt)
        except (ValueError, ImportError) as err:   # a malformed URL, a database driver not installed
            raise StorageError(f"cannot open the sweep storage {redacted(url)}: {err}") from None


def import_optuna():
    """The optuna module, or a one-line MissingExtraError. Imported here the first time, it logs warnings and
    errors only (it sends no telemetry)."""
    import sys

    from hushkit.errors import import_extra

    first = "optuna" not in sys.modules
    optuna = import_extra("optuna", "pipeline", "a hyper-parameter sweep")
    if first:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy reads: show its scheme alone
        return url.split("://", 1)[0] + "://..."
