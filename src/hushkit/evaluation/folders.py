"""`hushkit evaluate --clean DIR --noisy DIR`: score a user's own paired recordings with every system and write the
same leaderboard, plots and listening report as the pipeline."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from hushkit.audio import read_audio, resample, to_mono
from hushkit.evaluation import systems
from hushkit.evaluation.results import example_ids, write_evaluation
from hushkit.evaluation.scoring import score_system, spread
from hushkit.io import write_audio
from hushkit.mixing import snr_db, snr_level

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
LENGTH_TOLERANCE_S = 0.01   # a clean/noisy pair may differ by this much (codec padding); longer ones are cut to it


def audio_files(folder: Path) -> dict[str, Path]:
    """Audio files under `folder` keyed by their relative path without the extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in files:
                raise ValueError(f"{folder}: {files[key].name} and {path.name} have the same name; keep one")
            files[key] = path
    if not files:
        raise ValueError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


def pair_files(clean: Path, noisy: Path) -> list[tuple[str, Path, Path]]:
    """(name, clean file, noisy file) matched by relative path and name (the extension may differ); any file
    without its partner is an error that lists them."""
    clean_files, noisy_files = audio_files(clean), audio_files(noisy)
    only_noisy, only_clean = sorted(set(noisy_files) - set(clean_files)), sorted(set(clean_files) - set(noisy_files))
    if only_noisy or only_clean:
        problems = [f"{len(names)} {side} file(s) have no match in {other}: {', '.join(names[:5])}"
                    + (" ..." if len(names) > 5 else "")
                    for names, side, other in ((only_noisy, "noisy", clean), (only_clean, "clean", noisy)) if names]
        raise ValueError("file names do not match; " + "; ".join(problems))
    return [(key, clean_files[key], noisy_files[key]) for key in sorted(clean_files)]


def input_snr_db(clean: np.ndarray, noisy: np.ndarray, rate: int) -> float:
    """As the mix stage measures it: over active speech frames."""
    return snr_db(clean, noisy - clean, rate)


def prepare(pairs: list[tuple[str, Path, Path]], work: Path, rate: int) -> pd.DataFrame:
    """Each pair as mono float audio at `rate` under `work`, and the test table the scoring reads: SNR levels are
    the measured input SNRs to the nearest 5 dB, categories the first sub-folder."""
    rows = []
    for n, (key, clean_path, noisy_path) in enumerate(pairs):
        signals = []
        for path in (clean_path, noisy_path):
            audio, source_rate = read_audio(path)
            signals.append(resample(to_mono(audio), source_rate, rate))
        clean, noisy = signals
        if abs(len(clean) - len(noisy)) > LENGTH_TOLERANCE_S * rate:
            raise ValueError(f"{noisy_path}: {len(noisy) / rate:.3f} s long but its clean file {clean_path} is "
                             f"{len(clean) / rate:.3f} s; a pair must be the same recording")
        length = min(len(clean), len(noisy))
        clean, noisy = clean[:length], noisy[:length]
        file_id = f"{n:05d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:60]
        write_audio(work / "clean" / f"{file_id}.wav", clean, rate)
        write_audio(work / "noisy" / f"{file_id}.wav", noisy, rate)
        snr = input_snr_db(clean, noisy, rate)
        rows.append({"id": file_id, "name": key, "clean_path": f"clean/{file_id}.wav",
                     "noisy_path": f"noisy/{file_id}.wav", "input_snr_db": round(snr, 3),
                     "target_snr_db": snr_level(snr),
                     "noise_category": key.split("/")[0] if "/" in key else "all",
                     "speaker": "", "language": "", "sample_rate": rate, "duration": length / rate})
    return pd.DataFrame(rows)


def evaluate_folders(clean: Path, noisy: Path, out: Path, *, models: dict[str, str], baselines: list[str],
                     rate: int = 16000, dnsmos_files: int | None = None, report_examples: int = 4) -> pd.DataFrame:
    """Score every baseline and model (name → reference) on the paired folders; writes the evaluation to `out`
    and returns the leaderboard."""
    out = Path(out)
    pairs = pair_files(clean, noisy)
    work = out / "audio"
    test = prepare(pairs, work, rate)
    kinds = {"noisy": "input", **{b: "baseline" for b in baselines if b != "noisy"},
             **{name: "model" for name in models}}
    specs = {name: systems.baseline(name) for name in kinds if kinds[name] != "model"}
    specs.update({name: systems.model(reference) for name, reference in models.items()})
    dnsmos_ids, shown = spread(test, dnsmos_files), example_ids(test, report_examples)
    tables, folders = [], {}
    for name, spec in specs.items():
        system_dir = out / "systems" / name
        tables.append(score_system(name, spec, work, test, system_dir / "checks", dnsmos_ids=dnsmos_ids,
                                   examples=(system_dir / "examples", shown)))
        if kinds[name] != "input":
            folders[name] = system_dir / "examples"
    per_file = pd.concat(tables, ignore_index=True)
    intro = (f"{len(test)} pairs from {Path(noisy)} (noisy) and {Path(clean)} (clean), resampled to {rate} Hz mono; "
             "SNR levels are the measured input SNRs rounded to 5 dB.")
    return write_evaluation(out, per_file, kinds, mix=work, test=test, examples=folders,
                            title="hushkit evaluation of your recordings", intro=intro)
