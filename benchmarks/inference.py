"""Inference cost of every exported model next to the field's baselines, each on one CPU thread in its own process:
real-time factor, peak memory and algorithmic latency.

    python benchmarks/inference.py                       # every data/export/<arch>/model.onnx + rnnoise, deepfilternet3
    python benchmarks/inference.py --seconds 30 --repeats 5 --json inference.json

Models run through onnxruntime (one intra-op thread), the baselines through their native runtimes. Each system
enhances the same `--seconds` of a test mixture (tiled) `--repeats` times after one warm-up; the RTF is the median
processing time over the audio time. Peak memory is the process's peak RSS (ru_maxrss) and its growth over the RSS
before the system was loaded (the interpreter, torch and onnxruntime already imported). Algorithmic latency: for the models their
`algorithmic_latency_samples` (one STFT window: a sample waits for the window that completes it, no look-ahead
beyond it); for RNNoise and DeepFilterNet3 the runtime's output delay plus one 10-ms frame of buffering (20 + 10 ms
and 30 + 10 ms; the latter is DeepFilterNet3's published 40 ms). Run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_LATENCY_MS = {"rnnoise": 20.0 + 10.0, "deepfilternet3": 30.0 + 10.0}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def measure(system: str, seconds: float, repeats: int) -> dict:
    """In this (fresh) process: load `system` ("onnx:<path>" or a baseline name), time it, report."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy as np

    from hushkit.audio import read_audio
    from hushkit.io import read_table

    test = read_table(ROOT / "data" / "mix" / "manifest.csv").query("split == 'test'").sort_values("id")
    clip, rate = read_audio(ROOT / "data" / "mix" / test.noisy_path.iat[0])
    audio = np.resize(clip, int(seconds * rate)).astype(np.float32)
    import onnxruntime  # noqa: F401  - libraries loaded before `before`: the growth is the system's own
    import torch  # noqa: F401

    import hushkit.baselines  # noqa: F401,I001
    from hushkit.models import build_model

    before = _rss_mb()
    if system.startswith("onnx:"):
        import onnx
        import onnxruntime as ort

        path = system[5:]
        meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        def enhance(x):
            return session.run(None, {"noisy": x[None]})[0][0]

        latency_ms = 1000 * build_model(meta["model"], **json.loads(meta["args"])).algorithmic_latency_samples / rate
        name = meta["model"]
    else:
        torch.set_num_threads(1)
        from hushkit.baselines import build_baseline

        enhance, latency_ms, name = build_baseline(system, rate), BASELINE_LATENCY_MS.get(system), system
    enhance(audio[: rate])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        enhance(audio)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"system": name, "runtime": "onnxruntime" if system.startswith("onnx:") else "native",
            "rtf": statistics.median(times) / seconds, "peak_rss_mb": peak, "rss_growth_mb": peak - before,
            "latency_ms": latency_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=Path, default=ROOT / "data" / "export")
    parser.add_argument("--baselines", default="rnnoise,deepfilternet3")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one system in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.seconds, args.repeats)))
        return
    systems = [f"onnx:{p}" for p in sorted(args.exports.glob("*/model.onnx"))] + args.baselines.split(",")
    rows = []
    for system in systems:  # one process each: peak memory is the system's own, nothing shared or cached
        out = subprocess.run([sys.executable, __file__, "--one", system, "--seconds", str(args.seconds),
                              "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"inference on one CPU thread ({args.seconds:g} s of audio, median of {args.repeats})")
    for column in ("system", "runtime", "RTF", "peak RSS MB", "RSS growth MB", "latency ms"):
        table.add_column(column, justify="left" if column in ("system", "runtime") else "right")
    for row in rows:
        table.add_row(row["system"], row["runtime"], f"{row['rtf']:.4f}", f"{row['peak_rss_mb']:.0f}",
                      f"{row['rss_growth_mb']:.0f}", "" if row["latency_ms"] is None else f"{row['latency_ms']:.0f}")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
