"""baseline: score a reference system (baseline@<name>, one per `evaluate.baselines`) on the test split once, so every
architecture's evaluation and the summary compare against the same per-file figures: `noisy` (the unprocessed
input), `dsp` (a Wiener denoiser written here), `rnnoise`, `deepfilternet3` (see hushkit.baselines).

    out/per_file.csv, metrics.json   the scores (the same audio gives the same files)
    out/timing.json                  the RTF and each file's processing seconds (not a DVC output: hushkit.timing)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hushkit.baselines import build_baseline
from hushkit.config import EvaluateParams
from hushkit.evaluation import aggregate, systems
from hushkit.evaluation.scoring import score_on_test_split
from hushkit.io import write_json, write_table
from hushkit.stages._cli import stage_main
from hushkit.timing import split_timing, write_timing


def run(section: dict[str, Any], *, name: str, mix: Path, out: Path) -> None:
    """`section`: params.yaml's `evaluate`."""
    params = EvaluateParams.parse(section, "evaluate")
    listed = params.baselines
    if name not in listed:
        raise ValueError(f"evaluate.baselines {listed} does not list {name!r}")
    mix, out = Path(mix), Path(out)
    build_baseline(name, 16000)  # an unknown name fails here, before any work
    per_file, timing = split_timing(score_on_test_split(name, systems.baseline(name), params, mix, out))
    write_table(out / "per_file.csv", per_file)
    summary = aggregate.system_metrics(per_file, name, params.condition_weights)
    write_json(out / "metrics.json", summary)
    write_timing(out, timing)
    print(f"baseline: {name} on {summary['files']} test files (mean over conditions): "
          + ", ".join(f"{k} {v:.3f}" for k, v in summary["weighted"].items()) + f", RTF {timing['rtf']:.4f}")


def main(argv: list[str] | None = None) -> None:
    stage_main("baseline", run, argv, section="evaluate")


if __name__ == "__main__":
    main()
