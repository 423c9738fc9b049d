"""Benchmark: enhance a generated long file (default 1 hour, 16 kHz mono PCM_16) with a crnn (fresh seeded weights:
the cost does not depend on them) and report wall time and peak resident memory.

    python benchmarks/long_file.py                    # chunked path (10 s chunks, 0.5 s overlap)
    python benchmarks/long_file.py --stream           # streaming path
    python benchmarks/long_file.py --minutes 5 --keep /tmp/bench

What it shows: memory is bounded by the chunk, not the file. The file as float32 would be 230 MB and a whole-file
crnn forward would hold several GB of activations (its first conv layer alone: 16 x 257 bins x 225k frames x 4 B
= 3.7 GB); the peak RSS stays near the process's baseline (Python + torch + the model) plus one chunk's work.
Not a test (minutes of CPU); the figures it printed are quoted in the README.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from hushkit.enhance import enhance_file
from hushkit.inference import load_enhancer
from hushkit.models import build_model, save_checkpoint

RATE = 16000


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def write_long_file(path: Path, seconds: int, block_seconds: int = 10) -> None:
    """A gated tone in noise, written block by block (so generating it does not inflate the peak RSS)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as sink:
        for start in range(0, seconds, block_seconds):
            t = np.arange(start * RATE, min(seconds, start + block_seconds) * RATE) / RATE
            tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
            sink.write((tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--stream", action="store_true", help="the streaming path instead of overlapping chunks")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--keep", type=Path, help="work in this folder and keep the files (default: a temp folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.keep or Path(tempfile.mkdtemp(prefix="hushkit-long-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        seconds = int(round(args.minutes * 60))
        src, dst = work / "long.wav", work / "long_enhanced.wav"
        start = time.perf_counter()
        write_long_file(src, seconds)
        print(f"generated {src} ({seconds} s, {src.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s")
        torch.manual_seed(0)
        enhancer = load_enhancer(save_checkpoint(work / "crnn.pt", build_model("crnn").eval()))
        enhancer(np.zeros(RATE, np.float32))  # warm up (first-call allocations) before measuring
        before = current_rss_mb()
        start = time.perf_counter()
        enhance_file(src, dst, enhancer, chunk_seconds=args.chunk_seconds, stream=args.stream)
        wall = time.perf_counter() - start
        info = sf.info(str(dst))
        assert info.frames == seconds * RATE and info.samplerate == RATE and info.subtype == "PCM_16"
        mode = "stream" if args.stream else f"chunked ({args.chunk_seconds:g} s chunks)"
        print(f"crnn, {mode}, {args.threads} thread(s): {seconds} s of audio in {wall:.1f} s wall "
              f"(real-time factor {wall / seconds:.4f})")
        print(f"RSS before enhancing {before:.0f} MB; peak RSS {peak_rss_mb():.0f} MB "
              f"(the input as float32 would be {seconds * RATE * 4 / 1e6:.0f} MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
