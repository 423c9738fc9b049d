"""Benchmark: pipe audio through `hushkit enhance - -o -` at real-time pace, as a microphone would, and print the
latencies measured.

    python benchmarks/live_latency.py                          # 20 s of a generated signal, fresh crnn, 16 kHz mono
    python benchmarks/live_latency.py --rate 44100 --channels 2 --seconds 10
    python benchmarks/live_latency.py --input take.wav --model data/train/crnn/model.pt

A writer thread sends the raw S16_LE stream in 10 ms blocks, each at its real-time moment (as `arecord` would); a
reader thread notes when each output byte arrives. Printed:

* the command's own lines (standard error): its output delay (model window + resampling, in frames and ms) and its
  processing time per block, from a block being read to its output being written (median, p95, max);
* round trip per block, measured here: from the moment a block was written into the pipe to the moment the output
  frames at the same stream position came back (the block's processing plus both pipes and the scheduling of
  three processes);
* end to end: the output delay + the wait for a block to fill + that round trip (p95): how long after a sound is
  captured its enhanced version leaves the command.

Fresh seeded weights cost what trained ones do. Run it on an otherwise idle machine: the figures are wall-clock.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
BLOCK_SECONDS = 0.01


def signal(seconds: float, rate: int, channels: int) -> np.ndarray:
    """A gated tone in noise, (frames, channels) int16."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    audio = tone[:, None] + 0.05 * rng.standard_normal((len(t), channels))
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def fresh_model(folder: Path, architecture: str) -> Path:
    import torch

    from hushkit.models import build_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(folder / f"{architecture}.pt", build_model(architecture).eval())


def run(pcm: np.ndarray, rate: int, model: Path, extra: list[str]) -> dict:
    """Stream `pcm` through the command at real-time pace; returns timings and the output."""
    channels = pcm.shape[1]
    frame_bytes = 2 * channels
    block = max(1, round(BLOCK_SECONDS * rate))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}  # the command imports hushkit, which turns telemetry off
    command = [sys.executable, "-m", "hushkit.cli", "enhance", "-", "-o", "-", "--rate", str(rate), "--channels",
               str(channels), "--model", str(model), *extra]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env)
    stderr_lines: list[str] = []
    ready = threading.Event()

    def read_stderr() -> None:
        for line in process.stderr:
            text = line.decode(errors="replace").rstrip()
            stderr_lines.append(text)
            if "output delay" in text:  # the warm-up is over: the command now waits for its input
                ready.set()
        ready.set()

    arrivals: list[tuple[float, int]] = []  # (time, output bytes so far)

    def read_stdout() -> None:
        total = 0
        while chunk := process.stdout.read1(65536):
            total += len(chunk)
            arrivals.append((time.perf_counter(), total))

    threads = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for thread in threads:
        thread.start()
    ready.wait(timeout=300)
    data = pcm.astype("<i2").tobytes()
    sent: list[float] = []
    start = time.perf_counter()
    for k, offset in enumerate(range(0, len(data), block * frame_bytes)):
        delay = start + k * block / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        process.stdin.write(data[offset : offset + block * frame_bytes])
        process.stdin.flush()
        sent.append(time.perf_counter())
    process.stdin.close()
    process.wait(timeout=300)
    for thread in threads:
        thread.join(timeout=10)
    times = np.array([t for t, _ in arrivals])
    totals = np.array([n for _, n in arrivals])
    round_trip = []
    for k, moment in enumerate(sent):
        needed = min((k + 1) * block, len(pcm)) * frame_bytes
        index = np.searchsorted(totals, needed)
        if index < len(times):
            round_trip.append(times[index] - moment)
    return {"returncode": process.returncode, "stderr": stderr_lines, "round_trip": round_trip,
            "out_bytes": int(totals[-1]) if len(totals) else 0, "in_bytes": len(data), "block": block,
            "realtime": (sent[-1] - start) if sent else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--input", type=Path, help="an audio file to stream instead of the generated signal")
    parser.add_argument("--model", type=Path, help="default: a fresh seeded --architecture checkpoint")
    parser.add_argument("--architecture", default="crnn")
    args, extra = parser.parse_known_args()
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory(prefix="hushkit-live-") as work:
        if args.input:
            pcm, rate = sf.read(args.input, dtype="int16", always_2d=True)
        else:
            pcm, rate = signal(args.seconds, args.rate, args.channels), args.rate
        model = args.model or fresh_model(Path(work), args.architecture)
        result = run(pcm, rate, model, extra)
    for line in result["stderr"]:
        print(f"  command: {line}")
    if result["returncode"] != 0:
        sys.exit(f"the command failed (exit {result['returncode']})")
    trip = np.array(result["round_trip"]) * 1000
    delay_ms = next((float(line.split(" = ")[1].split(" ms")[0]) for line in result["stderr"]
                     if "output delay" in line), float("nan"))
    block_ms = result["block"] / rate * 1000
    print(f"{len(pcm) / rate:.1f} s at {rate} Hz, {pcm.shape[1]} channel(s), sent in {block_ms:.1f} ms blocks over "
          f"{result['realtime']:.1f} s; output {result['out_bytes']} bytes for {result['in_bytes']} in")
    print(f"round trip per block (written into the pipe -> same stream position back): median "
          f"{np.median(trip):.2f} ms, p95 {np.percentile(trip, 95):.2f} ms, max {trip.max():.2f} ms")
    print(f"end to end: output delay {delay_ms:.1f} ms + block {block_ms:.1f} ms + round trip "
          f"{np.percentile(trip, 95):.2f} ms (p95) = {delay_ms + block_ms + np.percentile(trip, 95):.1f} ms")


if __name__ == "__main__":
    main()
