"""`hushkit evaluate --clean DIR --noisy DIR`: score a user's own paired recordings with every system and write the
same leaderboard, plots and listening report as the pipeline.

Every pair is checked before any scoring (finite samples, long enough, not silent), so a bad recording is named as
the user named it, not as its working copy. The evaluation is written into a temp folder beside `out` and moved
into place once complete: a failed run leaves `out` as it was."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from hushkit.audio import AudioReadError, peak, read_audio, resample, rms_db, to_mono, write_audio
from hushkit.evaluation import systems
from hushkit.evaluation.results import write_evaluation
from hushkit.evaluation.scoring import example_ids, score_system, spread
from hushkit.io import atomic_folder
from hushkit.mixing import snr_db, snr_level

# Noise categories predicted per file (id → noisy audio file in, a table of id, predicted_category, probability
# out): hushkit.tagging.inference.predicted_categories bound to a tagger.
Categorise = Callable[[Mapping[str, Path]], pd.DataFrame]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
LENGTH_TOLERANCE_S = 0.01   # a clean/noisy pair may differ by this much (codec padding); longer ones are cut to it
# What the scoring's input check (check_mixture_files) requires of every prepared file, checked here first so that
# a failure names the user's file: long enough to score, and not (near) digital silence.
MIN_SECONDS, MIN_LEVEL_DB = 0.25, -60.0
# A system's name labels its rows and names its folder under `out`: no path separators, no leading dot or dash.
SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_system_name(name: str, taken: set[str]) -> None:
    """ValueError unless `name` can name a model's scores and folder (and is not a baseline's name)."""
    if not SYSTEM_NAME.fullmatch(name):
        raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, starting with a "
                         "letter or digit); give it as -m NAME=REF")
    if name in taken:
        raise ValueError(f"model name {name!r} is also a baseline's; give another as -m NAME=REF")


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
            if not np.all(np.isfinite(audio)):
                raise AudioReadError(f"{path}: contains NaN or infinite samples")
            signals.append(resample(to_mono(audio), source_rate, rate))
        clean, noisy = signals
        if abs(len(clean) - len(noisy)) > LENGTH_TOLERANCE_S * rate:
            raise ValueError(f"{noisy_path}: {len(noisy) / rate:.3f} s long but its clean file {clean_path} is "
                             f"{len(clean) / rate:.3f} s; a pair must be the same recording")
        length = min(len(clean), len(noisy))
        clean, noisy = clean[:length], noisy[:length]
        if length < MIN_SECONDS * rate:
            raise ValueError(f"{noisy_path}: {length / rate:.3f} s long; scoring needs at least {MIN_SECONDS} s")
        for path, audio, role in ((clean_path, clean, "a clean reference must hold the speech"),
                                  (noisy_path, noisy, "nothing to enhance")):
            level = rms_db(audio) if peak(audio) > 0 else float("-inf")
            if level < MIN_LEVEL_DB:
                raise ValueError(f"{path}: silent (level {level:.1f} dBFS, below {MIN_LEVEL_DB:g}); {role}")
        # Resampling can overshoot full scale a little: one gain for both files, which SNR, SI-SDR and STOI ignore.
        loudest = max(peak(clean), peak(noisy))
        if loudest > 1.0:
            clean, noisy = clean / loudest, noisy / loudest
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
                     rate: int = 16000, dnsmos_files: int | None = None, report_examples: int = 4,
                     overwrite: bool = False, categorise: Categorise | None = None,
                     tagger_name: str = "") -> pd.DataFrame:
    """Score every baseline and model (name → reference) on the paired folders; writes the evaluation to `out`
    and returns the leaderboard. `out` must be missing or an empty folder unless `overwrite`, which replaces it as
    a whole once the new evaluation is complete (never a folder holding the inputs). With `categorise` (a tagger's
    predictions, named `tagger_name` in the report), the scores are also broken down by the noise category it
    predicts for each noisy file."""
    clean, noisy, out = Path(clean), Path(noisy), Path(out)
    for name in models:
        check_system_name(name, {"noisy", *baselines})
    for folder in (clean, noisy):
        if out.resolve() == folder.resolve() or out.resolve() in folder.resolve().parents:
            raise ValueError(f"{out}: holds the input folder {folder}; write the evaluation elsewhere")
    pairs = pair_files(clean, noisy)
    for reference in models.values():  # a model that does not load is named now, not after the baselines ran;
        systems.build.__wrapped__(systems.model(reference), rate)  # uncached: the scoring processes load their own
    with atomic_folder(out, replace=overwrite) as work_out:
        work = work_out / "audio"
        test = prepare(pairs, work, rate)
        predicted = None if categorise is None else categorise(
            {row.id: work / row.noisy_path for row in test.itertuples()})
        kinds = {"noisy": "input", **{b: "baseline" for b in baselines if b != "noisy"},
                 **{name: "model" for name in models}}
        specs = {name: systems.baseline(name) for name in kinds if kinds[name] != "model"}
        specs.update({name: systems.model(reference) for name, reference in models.items()})
        dnsmos_ids, shown = spread(test, dnsmos_files), example_ids(test, report_examples)
        tables, folders = [], {}
        for name, spec in specs.items():
            system_dir = work_out / "systems" / name
            tables.append(score_system(name, spec, work, test, system_dir / "checks", dnsmos_ids=dnsmos_ids,
                                       examples=(system_dir / "examples", shown)))
            if kinds[name] != "input":
                folders[name] = system_dir / "examples"
        per_file = pd.concat(tables, ignore_index=True)
        intro = (f"{len(test)} pairs from {noisy} (noisy) and {clean} (clean), resampled to {rate} Hz mono; "
                 "SNR levels are the measured input SNRs rounded to 5 dB.")
        return write_evaluation(work_out, per_file, kinds, mix=work, test=test, examples=folders,
                                title="hushkit evaluation of your recordings", intro=intro,
                                predicted=predicted, predicted_by=tagger_name)
