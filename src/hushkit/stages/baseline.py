"""baseline: score a reference system (baseline@<name>, one per `evaluate.baselines`) on the test split once, so every
architecture's evaluation and the summary compare against the same per-file figures: `noisy` (the unprocessed
input), `dsp` (a Wiener denoiser written here), `rnnoise`, `deepfilternet3` (see hushkit.baselines)."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from hushkit.baselines import build_baseline
from hushkit.io import write_json, write_table
from hushkit.metrics import METRICS
from hushkit.stages._cli import stage_main
from hushkit.stages.evaluate import score_system, test_split


@functools.cache
def _system(name: str, sample_rate: int):
    return build_baseline(name, sample_rate)


def _enhance(name: str, sample_rate: int, audio: np.ndarray) -> np.ndarray:
    # Built once per worker process (the native runtimes load there, not in the parent).
    return _system(name, sample_rate)(audio)


def run(params: dict[str, Any], *, name: str, mix: Path, out: Path) -> None:
    listed = params.get("baselines") or []
    if name not in listed:
        raise ValueError(f"evaluate.baselines {listed} does not list {name!r}")
    mix, out = Path(mix), Path(out)
    test = test_split(mix, params)
    rate = int(test.sample_rate.iat[0])
    build_baseline(name, rate)  # an unknown name fails here, before any work
    # The baselines are single-threaded: one process per core.
    per_file = score_system(name, functools.partial(_enhance, name, rate), mix, test, out / "checks",
                            workers=os.cpu_count() or 1)
    write_table(out / "per_file.csv", per_file)
    means = per_file[list(METRICS)].mean()
    write_json(out / "metrics.json", {name: means.round(4).to_dict(), "files": len(per_file)})
    print(f"baseline: {name} on {len(per_file)} test files: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))


def main(argv: list[str] | None = None) -> None:
    stage_main("evaluate", run, argv)


if __name__ == "__main__":
    main()
