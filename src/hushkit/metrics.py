"""Speech-quality metrics of the field: PESQ (WB, or NB at 8 kHz), STOI, ESTOI, SI-SDR."""
from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable

import numpy as np

METRICS = ("pesq", "stoi", "estoi", "si_sdr")
PESQ_RATES = (8000, 16000)


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-10) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean signals."""
    reference = reference.astype(np.float64) - np.mean(reference)
    estimate = estimate.astype(np.float64) - np.mean(estimate)
    scale = np.dot(estimate, reference) / (np.dot(reference, reference) + eps)
    target = scale * reference
    residual = estimate - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(residual, residual) + eps)))


def pesq_score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """PESQ-WB at 16 kHz, PESQ-NB at 8 kHz (the only rates P.862 defines); NaN when PESQ finds no speech."""
    from pesq import pesq
    from pesq.cypesq import NoUtterancesError

    if sample_rate not in PESQ_RATES:
        raise ValueError(f"PESQ needs 8000 or 16000 Hz audio, got {sample_rate}")
    mode = "wb" if sample_rate == 16000 else "nb"
    try:
        return float(pesq(sample_rate, reference, estimate, mode))
    except NoUtterancesError:
        return math.nan


def score_pair(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """All metrics for one (clean, processed) pair of equal length."""
    from pystoi import stoi

    if reference.shape != estimate.shape:
        raise ValueError(f"reference {reference.shape} and estimate {estimate.shape} differ in length")
    return {
        "pesq": pesq_score(reference, estimate, sample_rate),
        "stoi": float(stoi(reference, estimate, sample_rate, extended=False)),
        "estoi": float(stoi(reference, estimate, sample_rate, extended=True)),
        "si_sdr": si_sdr(reference, estimate),
    }


def _score_job(job: tuple[np.ndarray, np.ndarray, int]) -> dict[str, float]:
    return score_pair(*job)


def score_pairs(jobs: Iterable[tuple[np.ndarray, np.ndarray, int]], workers: int = 1) -> list[dict[str, float]]:
    """Score many pairs, in a process pool when `workers` > 1 (PESQ/STOI are single-threaded C/numpy)."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) < 4:
        return [_score_job(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_score_job, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
