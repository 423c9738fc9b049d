"""features: validate the mixtures, then pack train/val once into memory-mappable arrays for the training loop.

    out/{train,val}/{clean,noisy}.npy + index.csv   the mix stage's fixed pairs (validation; `mixing: fixed` training)
    out/pools/{speech,noise}.npy + .csv            the training split's clean speech (trimmed like the mixtures) and
                                                   noise clips, which dynamic mixing draws from at every step

Decoding and resampling happen here, once; the training loop only slices arrays."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hushkit.audio import read_audio, trim_silence
from hushkit.checks import array_stats, suites, validate
from hushkit.config import FeaturesParams, MixParams
from hushkit.io import read_table, write_json, write_npy, write_table
from hushkit.checks.files import check_mixture_files
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


def pack_pool(corpus: Path, files: pd.DataFrame, trim_top_db: float | None, rate: int
              ) -> tuple[np.ndarray, pd.DataFrame]:
    """Concatenate corpus files (trimmed of silent ends when `trim_top_db` is set) into one float32 array plus a
    (path, offset, length, speaker, category) index."""
    parts, index, offset = [], [], 0
    for row in files.sort_values("path").itertuples():
        audio, _ = read_audio(corpus / row.path)
        if trim_top_db is not None:
            audio = trim_silence(audio, rate, trim_top_db)
        parts.append(audio.astype(np.float32))
        index.append({"path": row.path, "offset": offset, "length": len(audio), "speaker": row.speaker,
                      "category": row.category})
        offset += len(audio)
    if not parts:
        raise ValueError("features: the training split has no files of one kind for the dynamic-mixing pools")
    return np.concatenate(parts), pd.DataFrame(index)


def run(section: dict[str, Any], *, mix: Path, corpus: Path, out: Path, mix_params: dict[str, Any]) -> None:
    """`section`: params.yaml's `features`; `mix_params`: its `mix` (the SNR tolerance and the trimming)."""
    mix, corpus, out = Path(mix), Path(corpus), Path(out)
    params, mix_settings = FeaturesParams.parse(section, "features"), MixParams.parse(mix_params, "mix")
    mixtures = read_table(mix / "manifest.csv")
    checks = out / "checks"
    validate(suites.mixture_manifest_frame(mixtures), suites.mixture_manifest(mix_settings.snr_tolerance_db),
             name="features input: mixture manifest", report_path=checks / "input_manifest.json",
             id_column="noisy_path")
    check_mixture_files(mix, mixtures, name="features input: mixture files", report_path=checks / "input_files.json")

    rate = int(mixtures.sample_rate.iat[0])
    segment = int(round(params.segment_seconds * rate))
    summary: dict[str, Any] = {"sample_rate": rate, "segment_samples": segment, "splits": {}}
    stats = []
    for split in PACKED_SPLITS:
        clean, noisy, index = pack(mix, mixtures[mixtures.split == split])
        stats += [array_stats(f"{split}/clean.npy", clean), array_stats(f"{split}/noisy.npy", noisy)]
        write_npy(out / split / "clean.npy", clean)
        write_npy(out / split / "noisy.npy", noisy)
        write_table(out / split / "index.csv", index)
        summary["splits"][split] = {"utterances": len(index), "seconds": round(len(clean) / rate, 3)}
    pools = read_table(mix / "pools.csv") if (mix / "pools.csv").is_file() else None
    if pools is not None and (pools.split == "train").any():
        pools = pools.fillna({"speaker": "", "category": ""})
        for kind, trim in (("speech", mix_settings.trim_top_db), ("noise", None)):
            audio, index = pack_pool(corpus, pools[(pools.kind == kind) & (pools.split == "train")], trim, rate)
            stats.append(array_stats(f"pools/{kind}.npy", audio))
            write_npy(out / "pools" / f"{kind}.npy", audio)
            write_table(out / "pools" / f"{kind}.csv", index)
            summary[f"{kind}_pool"] = {"files": len(index), "seconds": round(len(audio) / rate, 3)}
    validate(pd.DataFrame(stats), suites.feature_arrays(), name="features output: packed arrays",
             report_path=checks / "output_arrays.json", id_column="name")
    write_json(out / "summary.json", summary)
    print("features: " + ", ".join(f"{s}: {v['utterances']} utterances, {v['seconds'] / 60:.1f} min"
                                   for s, v in summary["splits"].items())
          + "".join(f"; {kind} pool: {summary[f'{kind}_pool']['files']} files, "
                    f"{summary[f'{kind}_pool']['seconds'] / 60:.1f} min" for kind in ("speech", "noise")
                    if f"{kind}_pool" in summary))


def main(argv: list[str] | None = None) -> None:
    stage_main("features", run, argv, sections={"mix_params": "mix"})


if __name__ == "__main__":
    main()
