"""Where the user's repository is. `dvc exp run --temp/--queue` runs the pipeline in a copy under
<repo>/.dvc/tmp/exps/...; a relative path from params (a corpus folder, the sqlite tracking store) still means the
user's repository there, not the throw-away copy."""
from __future__ import annotations

import os
from pathlib import Path

EXPERIMENT_COPY = os.path.join(".dvc", "tmp", "exps") + os.sep


def repo_root(cwd: str | os.PathLike | None = None) -> Path:
    """The user's repository for a process working in `cwd` (default: the current folder)."""
    here = os.path.abspath(cwd or os.getcwd()) + os.sep
    marker = os.sep + EXPERIMENT_COPY
    return Path(here.split(marker)[0] if marker in here else here.rstrip(os.sep))


def resolve(value: str | os.PathLike, cwd: str | os.PathLike | None = None) -> Path:
    """A path from params: absolute as it is; relative to the user's repository (see repo_root) otherwise."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    root = repo_root(cwd)
    return path if root == Path(os.path.abspath(cwd or os.getcwd())) else root / path
