"""baseline: score a reference system (baseline@<name>) on the test split once, so every architecture's
evaluation compares against the same per-file figures. `noisy` is the unprocessed input (passthrough)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from hushkit.io import write_table
from hushkit.metrics import METRICS
from hushkit.stages._cli import stage_main
from hushkit.stages.evaluate import NOISY, score_system, test_split

BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    NOISY: lambda audio: audio,
}


def run(params: dict[str, Any], *, name: str, mix: Path, out: Path) -> None:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    mix, out = Path(mix), Path(out)
    per_file = score_system(name, BASELINES[name], mix, test_split(mix, params), out / "checks")
    write_table(out / "per_file.csv", per_file)
    means = per_file[list(METRICS)].mean()
    print(f"baseline: {name} on {len(per_file)} test files: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))


def main(argv: list[str] | None = None) -> None:
    stage_main("evaluate", run, argv)


if __name__ == "__main__":
    main()
