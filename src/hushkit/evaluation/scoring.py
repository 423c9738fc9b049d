"""Score one system on a paired test set: enhance every noisy file in single-threaded worker processes (so each
file's time is a one-thread real-time factor), then score it against its clean reference in parallel."""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from hushkit.audio import read_audio, write_audio
from hushkit.checks import suites, validate
from hushkit.checks.files import check_mixture_files
from hushkit.config import EvaluateParams
from hushkit.evaluation.systems import Spec, build
from hushkit.io import TABLE_DECIMALS, read_table
from hushkit.metrics import score_pairs
from hushkit.progress import progress

KEYS = ("id", "target_snr_db", "noise_category", "speaker", "language", "condition")


def spread(test: pd.DataFrame, n: int | None) -> pd.Index:
    """`n` ids spread evenly over the test order (all when n is None or ≥ the split): with the test split's
    utterance-major, level-minor order this keeps every SNR level and noise category represented."""
    if n is None or n >= len(test):
        return pd.Index(test.id)
    positions = np.unique(np.linspace(0, len(test) - 1, int(n)).round().astype(int))
    return pd.Index(test.id.iloc[positions])


def _single_thread() -> None:
    # One thread per worker: the timings are one-thread RTFs, and N workers on N cores do not oversubscribe.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


_WARM: set = set()


def _enhance_file(spec: Spec, path: Path) -> tuple[np.ndarray, float]:
    audio, rate = read_audio(path)
    system = build(spec, rate)  # built once per process, outside the timed call
    if (spec, rate) not in _WARM:  # and run once untimed: first calls pay lazy initialisation, not processing
        system(audio[: rate // 2])
        _WARM.add((spec, rate))
    start = time.perf_counter()
    enhanced = np.asarray(system(audio), dtype=np.float32)
    return enhanced, time.perf_counter() - start


def enhance_all(spec: Spec, paths: list[Path], workers: int, description: str) -> list[tuple[np.ndarray, float]]:
    with ProcessPoolExecutor(max(1, workers), initializer=_single_thread) as pool:
        return list(progress(pool.map(_enhance_file, [spec] * len(paths), paths, chunksize=4), len(paths),
                             description))


def score_system(system: str, spec: Spec, mix: Path, test: pd.DataFrame, checks: Path, *,
                 dnsmos_ids: pd.Index | None = None, examples: tuple[Path, pd.Index] | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """Per-file scores of `spec` against the clean references, one row per test file: the metrics (DNSMOS only
    for `dnsmos_ids`, else NaN), `seconds` (its one-thread processing time) and `rtf` (seconds / duration).
    `examples` = (folder, ids): the enhanced audio of those files is kept there for the listening report."""
    check_mixture_files(mix, test, name=f"evaluate input: test mixtures ({system})", report_path=checks / "input.json")
    rate = int(test.sample_rate.iat[0])
    workers = workers or os.cpu_count() or 1
    outputs = enhance_all(spec, [mix / p for p in test.noisy_path], workers, f"enhance test set ({system})")
    dnsmos_ids = pd.Index(test.id) if dnsmos_ids is None else dnsmos_ids
    jobs = [(read_audio(mix / clean)[0], enhanced, rate, file_id in dnsmos_ids)
            for file_id, clean, (enhanced, _) in zip(test.id, test.clean_path, outputs)]
    for (reference, enhanced, _, _), file_id in zip(jobs, test.id):
        if enhanced.shape != reference.shape:
            raise ValueError(f"{system} returned {enhanced.shape} samples for {file_id}, not {reference.shape}")
    # Rounded as per_file.csv stores them: below that, a score can differ between runs on the same audio (ESTOI's
    # multi-threaded linear algebra does, in the last bits), and every mean and the data check's fingerprint are
    # then made of exactly the values the file holds.
    scores = pd.DataFrame(score_pairs(jobs, workers=workers, description=f"score test set ({system})")).round(TABLE_DECIMALS)
    seconds = np.array([elapsed for _, elapsed in outputs])
    durations = np.array([len(reference) / rate for reference, *_ in jobs])
    # files outside the mix stage's test conditions (a user's recordings) have no `condition`: left empty
    per_file = pd.concat([test.reindex(columns=list(KEYS)).reset_index(drop=True).assign(system=system), scores],
                         axis=1)
    per_file = per_file.assign(duration=durations)
    # checked before the timings join: the report (a DVC output) then depends on the scores alone
    validate(per_file.assign(path=per_file.id + ":" + per_file.system), suites.evaluation_scores(),
             name=f"evaluate output: per-file scores of {system}", report_path=checks / "scores.json")
    per_file = per_file.assign(seconds=seconds, rtf=seconds / durations)
    if examples is not None:
        folder, ids = examples
        for file_id, (enhanced, _) in zip(test.id, outputs):
            if file_id in ids:
                write_audio(Path(folder) / f"{file_id}.wav", enhanced, rate, subtype="PCM_16")
    return per_file


def example_ids(test: pd.DataFrame, n: int) -> pd.Index:
    """`n` test files for listening, spread over the split (so different levels and noises)."""
    return spread(test, n) if n else pd.Index([])


def test_split(mix: Path, max_files: int | None) -> pd.DataFrame:
    """The test mixtures in a fixed order (`evaluate.max_files` of them, spread over the split, if set: every SNR
    level, noise category and origin keeps its place, where the first N would be mixtures only): every system sees
    the same."""
    test = read_table(Path(mix) / "manifest.csv").query("split == 'test'").sort_values("id")
    return test[test.id.isin(spread(test, max_files))] if max_files else test


def score_on_test_split(system: str, spec: Spec, params: EvaluateParams, mix: Path, out: Path) -> pd.DataFrame:
    """Score `spec` on the test split with the evaluate params (DNSMOS subset, report examples) and write
    its per_file.csv; its enhanced audio for the listening report goes to out/examples."""
    test = test_split(mix, params.max_files)
    return score_system(system, spec, mix, test, out / "checks", dnsmos_ids=spread(test, params.dnsmos_files),
                        examples=(out / "examples", example_ids(test, params.report_examples)))
