"""Speech-quality metrics of the field: PESQ (WB, or NB at 8 kHz), STOI, ESTOI, SI-SDR against the clean
reference, and DNSMOS (P.835 SIG/BAK/OVRL predicted from the processed audio alone)."""
from __future__ import annotations

import functools
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np

from hushkit.progress import progress

METRICS = ("pesq", "stoi", "estoi", "si_sdr")
DNSMOS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovr")
PESQ_RATES = (8000, 16000)
DNSMOS_RATE = 16000
DNSMOS_SECONDS = 9.01   # the model's fixed input: shorter clips are tiled, longer ones scored in 1-s hops


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


@functools.cache
def _dnsmos_session():
    """DNSMOS P.835 (Reddy et al. 2022) as shipped by `speechmos`, on one thread: scoring runs one process per core."""
    import onnxruntime as ort
    import speechmos

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    model = Path(speechmos.__file__).parent / "dnsmos_models" / "sig_bak_ovr.onnx"
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def dnsmos(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS SIG/BAK/OVRL (1-5) of one clip, the reference implementation's procedure: 16 kHz, clips tiled up to
    9.01 s by doubling, 9.01-s windows every second, raw scores mapped by the published polynomials, windows averaged."""
    from hushkit.audio import resample

    audio = resample(np.asarray(audio, dtype=np.float32), sample_rate, DNSMOS_RATE)
    if not np.all(np.isfinite(audio)) or audio.size == 0:
        return dict.fromkeys(DNSMOS, math.nan)
    audio = np.clip(audio, -1.0, 1.0)
    window = int(DNSMOS_SECONDS * DNSMOS_RATE)
    while len(audio) < window:  # doubled, not tiled to fit: the reference's choice (it sets the window count)
        audio = np.concatenate([audio, audio])
    hops = int(np.floor(len(audio) / DNSMOS_RATE - DNSMOS_SECONDS)) + 1
    batch = np.stack([audio[i * DNSMOS_RATE: i * DNSMOS_RATE + window] for i in range(hops)
                      if len(audio) >= i * DNSMOS_RATE + window])
    raw = np.concatenate([_dnsmos_session().run(None, {"input_1": row[None]})[0] for row in batch])
    polynomials = {"dnsmos_sig": [-0.08397278, 1.22083953, 0.0052439],
                   "dnsmos_bak": [-0.13166888, 1.60915514, -0.39604546],
                   "dnsmos_ovr": [-0.06766283, 1.11546468, 0.04602535]}
    return {name: float(np.mean(np.polyval(polynomials[name], raw[:, i]))) for i, name in enumerate(DNSMOS)}


def score_pair(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
               with_dnsmos: bool = False) -> dict[str, float]:
    """All metrics for one (clean, processed) pair of equal length; DNSMOS (0.4 s of one core a clip) if asked,
    else NaN."""
    from pystoi import stoi

    if reference.shape != estimate.shape:
        raise ValueError(f"reference {reference.shape} and estimate {estimate.shape} differ in length")
    return {
        "pesq": pesq_score(reference, estimate, sample_rate),
        "stoi": float(stoi(reference, estimate, sample_rate, extended=False)),
        "estoi": float(stoi(reference, estimate, sample_rate, extended=True)),
        "si_sdr": si_sdr(reference, estimate),
        **(dnsmos(estimate, sample_rate) if with_dnsmos else dict.fromkeys(DNSMOS, math.nan)),
    }


def _score_job(job: tuple) -> dict[str, float]:
    return score_pair(*job)


def score_pairs(jobs: Iterable[tuple], workers: int = 1, description: str | None = None) -> list[dict[str, float]]:
    """Score many (reference, estimate, rate[, with_dnsmos]) jobs, in a process pool when `workers` > 1 (every
    metric is single-threaded C/numpy/onnxruntime). With a `description`, files done / total are reported."""
    jobs = list(jobs)
    report = (lambda scores: progress(scores, len(jobs), description)) if description else (lambda scores: scores)
    if workers <= 1 or len(jobs) < 4:
        return list(report(map(_score_job, jobs)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(report(pool.map(_score_job, jobs, chunksize=max(1, len(jobs) // (16 * workers)))))
