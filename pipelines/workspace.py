"""Where a retrain run works: a work copy of the repo (its files minus what git ignores, its own params.yaml, the
repo's DVC cache and download store shared) and training lanes (throw-away copies of the workspace, one per
architecture trained at the same time, whose outputs are symlinks into the shared cache)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from pipelines.dvc_runner import dvc_cache_dir

# Top-level paths a work copy never takes when the repo is not a git checkout (otherwise .gitignore decides).
NOT_COPIED = {".git", ".venv", "data", "mlruns", "mlartifacts", "mlflow.db", ".hushkit", "__pycache__",
              ".pytest_cache"}


def copy_worktree(source: Path, target: Path) -> None:
    """The files of `source` that git would see (tracked and new, not ignored) copied to `target`; every file but
    the ignored top-level ones when `source` is not a git checkout."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=source,
                            capture_output=True, text=True)
    if listed.returncode == 0:
        names = [name for name in listed.stdout.split("\0") if name]
    else:
        names = [str(p.relative_to(source)) for p in source.rglob("*")
                 if p.is_file() and not NOT_COPIED & set(p.relative_to(source).parts)
                 and p.relative_to(source).parts[:2] not in ((".dvc", "cache"), (".dvc", "tmp"))]
    for name in names:
        src = source / name
        if src.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name)


def init_workspace(target: Path, cache: Path, link_type: str | None = None) -> None:
    """Make a copied tree a workspace of its own (a git repo, so DVC and git-ignore work) that uses `cache`."""
    subprocess.run(["git", "init", "-q"], cwd=target, check=True, capture_output=True)
    lines = ["[cache]", f"    dir = {cache}"] + ([f"    type = \"{link_type}\""] if link_type else [])
    (target / ".dvc" / "config.local").write_text("\n".join(lines) + "\n")


def prepare_work_copy(repo: Path, params: dict[str, Any], workdir: Path, env: dict[str, str]) -> None:
    """`workdir` made a work copy of `repo` that runs `params` (a previous work copy is updated in place)."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / "dvc.yaml").is_file():
            raise FileExistsError(f"workdir {workdir} exists and is not a previous work copy (no dvc.yaml)")
    workdir.mkdir(parents=True, exist_ok=True)
    copy_worktree(repo, workdir)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    # The download stage's store of fetched corpora (download.cache, no DVC output): shared, never fetched twice.
    cache = (params.get("download") or {}).get("cache")
    if isinstance(cache, str) and cache and not os.path.isabs(cache):
        shared, link = repo / cache, workdir / cache
        if shared.is_dir() and not os.path.lexists(link):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(shared, target_is_directory=True)
    if not (workdir / ".git").exists():
        init_workspace(workdir, dvc_cache_dir(repo, env))


def make_lane(workdir: Path, lane: Path, cache: Path) -> None:
    """`lane` made a throw-away copy of the workspace `workdir` that uses the DVC cache `cache`."""
    copy_worktree(workdir, lane)
    shutil.copy2(workdir / "params.yaml", lane / "params.yaml")
    # Symlinks to the cache: the lane reads the data stages' outputs and writes only its own stage's outputs.
    init_workspace(lane, cache, link_type="symlink,copy")
