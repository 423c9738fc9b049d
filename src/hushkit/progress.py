"""Progress of long loops: a live bar on a terminal, and otherwise (DVC, CI, a log file) a plain line at every
tenth of the work, so that a stage run by `dvc repro` still shows files done / total."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Yield `items` unchanged while reporting how many of `total` are done under `description`."""
    if sys.stdout.isatty():
        from rich.progress import track

        yield from track(items, total=total, description=description, transient=True)
        return
    marks = {max(1, round(total * tenth / 10)) for tenth in range(1, 11)} if total > 0 else set()
    start = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        if done in marks:
            print(f"{description}: {done}/{total} ({time.monotonic() - start:.0f} s)", flush=True)
