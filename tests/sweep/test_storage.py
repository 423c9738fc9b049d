"""The study's database: one file for every process of a study wherever it runs, opened by several processes at
once, and a store that cannot be opened named in one line without its password."""
from __future__ import annotations

import multiprocessing

import pytest

from hushkit.sweep.storage import STORAGE_ENV, StorageError, open_storage, storage_url


def test_the_default_study_database_is_the_repositorys_also_from_an_experiment_copy(tmp_path, monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path / 'optuna.db'}"
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "standalone" / "tmpabc"
    assert storage_url("sqlite:///studies/o.db", copy) == f"sqlite:///{tmp_path / 'studies' / 'o.db'}"
    monkeypatch.setenv(STORAGE_ENV, "postgresql://u:pw@db/optuna")
    assert storage_url(None, tmp_path) == "postgresql://u:pw@db/optuna"
    assert storage_url("sqlite:////abs/o.db", tmp_path) == "sqlite:////abs/o.db"   # the option wins


def _open(url: str, barrier) -> str:
    import optuna  # noqa: F401 - imported before the barrier: the processes then open the database together

    barrier.wait()
    storage = open_storage(url, heartbeat_seconds=30)
    return storage.get_all_studies().__class__.__name__


def test_processes_opening_a_new_database_at_once_all_get_it(tmp_path):
    """They race to create its tables and record their version; every one of them must end up with the store."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        for round_ in range(5):
            url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
            assert pool.starmap(_open, [(url, manager.Barrier(4))] * 4) == ["list"] * 4


def test_a_store_that_cannot_be_opened_is_one_line_without_its_password(tmp_path):
    with pytest.raises(StorageError) as caught:
        open_storage(f"sqlite:///{tmp_path / 'missing' / 'folder' / 'o.db'}")
    assert str(caught.value).startswith(f"cannot open the sweep storage sqlite:///{tmp_path}/missing/folder/o.db: ")
    with pytest.raises(StorageError) as caught:
        open_storage("nosuchdialect://user:hunter2@host/db")
    assert "hunter2" not in str(caught.value) and "\n" not in str(caught.value)
