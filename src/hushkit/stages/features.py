"""features: validate the mixtures, then pack train/val once into memory-mappable arrays for the training loop.

Decoding and resampling happen here, once; the training loop only slices arrays (a seed project lost most of
its time resampling inside the loop)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hushkit.audio import read_audio
from hushkit.checks import array_stats, suites, validate
from hushkit.io import read_table, write_json, write_npy, write_table
from hushkit.stages._checks import check_mixture_files
from hushkit.stages._cli import stage_main

PACKED_SPLITS = ("train", "val")


def pack(mix_dir: Path, mixtures: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Concatenate every pair of a split into two aligned float32 arrays plus an (id, offset, length) index."""
    cleans, noisies, index, offset = [], [], [], 0
    for row in mixtures.sort_values("id").itertuples():
        clean, _ = read_audio(mix_dir / row.clean_path)
        noisy, _ = read_audio(mix_dir / row.noisy_path)
        if clean.shape != noisy.shape:
            raise ValueError(f"{mix_dir / row.noisy_path}: {noisy.shape} samples but its clean pair has {clean.shape}")
        cleans.append(clean)
        noisies.append(noisy)
        index.append({"id": row.id, "offset": offset, "length": len(clean)})
        offset += len(clean)
    return np.concatenate(cleans), np.concatenate(noisies), pd.DataFrame(index)


def run(params: dict[str, Any], *, mix: Path, out: Path, mix_params: dict[str, Any]) -> None:
    mix, out = Path(mix), Path(out)
    mixtures = read_table(mix / "manifest.csv")
    checks = out / "checks"
    validate(suites.mixture_manifest_frame(mixtures), suites.mixture_manifest(mix_params["snr_tolerance_db"]),
             name="features input: mixture manifest", report_path=checks / "input_manifest.json",
             id_column="noisy_path")
    check_mixture_files(mix, mixtures, name="features input: mixture files", report_path=checks / "input_files.json")

    rate = int(mixtures.sample_rate.iat[0])
    segment = int(round(params["segment_seconds"] * rate))
    summary: dict[str, Any] = {"sample_rate": rate, "segment_samples": segment, "splits": {}}
    stats = []
    for split in PACKED_SPLITS:
        clean, noisy, index = pack(mix, mixtures[mixtures.split == split])
        stats += [array_stats(f"{split}/clean.npy", clean), array_stats(f"{split}/noisy.npy", noisy)]
        write_npy(out / split / "clean.npy", clean)
        write_npy(out / split / "noisy.npy", noisy)
        write_table(out / split / "index.csv", index)
        summary["splits"][split] = {"utterances": len(index), "seconds": round(len(clean) / rate, 3)}
    validate(pd.DataFrame(stats), suites.feature_arrays(), name="features output: packed arrays",
             report_path=checks / "output_arrays.json", id_column="name")
    write_json(out / "summary.json", summary)
    print("features: " + ", ".join(f"{s}: {v['utterances']} utterances, {v['seconds'] / 60:.1f} min"
                                   for s, v in summary["splits"].items()))


def main(argv: list[str] | None = None) -> None:
    stage_main("features", run, argv, sections={"mix_params": "mix"})


if __name__ == "__main__":
    main()
