"""Cost of every registered model on this machine's CPU: parameters, MACs per second of audio, inference real-time
factor (1 thread) and training-step time (forward + backward + AdamW).

    python benchmarks/models.py
    python benchmarks/models.py --models autoencoder,crced --args '{"crced": {"n_fft": 512, "hop": 256}}'
    python benchmarks/models.py --json bench.json

Models are built with their default constructor arguments, overridden per model by ``--args``. The training step
is the generator / denoiser alone with ``combined_loss({"compressed_magnitude": 0.7, "compressed_complex": 0.3})`` (no discriminator for segan),
on random audio: cost does not depend on the values. Timings are wall time; run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from hushkit.models import available_models, build_model
from hushkit.models.complexity import macs_per_second, real_time_factor
from hushkit.training.losses import combined_loss

RTF_SECONDS = 4.0  # audio per inference forward, for the real-time factor and the MAC count


def train_step_seconds(model: torch.nn.Module, batch: int, seconds: float, threads: int, steps: int,
                       warmup: int) -> float:
    """Median wall time of `steps` training steps (after `warmup`): forward, compressed-spectral loss, backward,
    AdamW step, on a (batch, seconds) random batch with `threads` intra-op threads (restored afterwards)."""
    previous = torch.get_num_threads()
    generator = torch.Generator().manual_seed(0)
    samples = round(seconds * model.sample_rate)
    clean = 0.1 * torch.randn(batch, samples, generator=generator)
    noisy = clean + 0.05 * torch.randn(batch, samples, generator=generator)
    loss_fn = combined_loss({"compressed_magnitude": 0.7, "compressed_complex": 0.3})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    try:
        torch.set_num_threads(threads)
        for step in range(warmup + steps):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(noisy), clean)
            loss.backward()
            optimizer.step()
            elapsed = time.perf_counter() - start
            if not math.isfinite(loss.item()):
                raise RuntimeError(f"non-finite training loss at step {step}")
            if step >= warmup:
                times.append(elapsed)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None,
                        help="comma-separated model names (default: every registered model)")
    parser.add_argument("--args", default="{}", metavar="JSON",
                        help='constructor overrides per model, e.g. \'{"crced": {"n_fft": 512, "hop": 256}}\'')
    parser.add_argument("--batch", type=int, default=16, help="training batch size (default 16)")
    parser.add_argument("--seconds", type=float, default=2.0, help="training crop length in seconds (default 2.0)")
    parser.add_argument("--train-threads", type=int, default=2, help="threads for the training step (default 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps, median reported (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first (default 2)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)

    registered = available_models()
    args.models = registered if args.models is None else [m.strip().lower() for m in args.models.split(",")
                                                          if m.strip()]
    unknown = [m for m in args.models if m not in registered]
    if unknown or not args.models:
        parser.error(f"--models: unknown {unknown or '(empty)'}; registered: {', '.join(registered)}")
    try:
        overrides = json.loads(args.args)
    except json.JSONDecodeError as err:
        parser.error(f"--args is not valid JSON: {err}")
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        parser.error('--args must be a JSON object of objects: {"model": {"argument": value}}')
    overrides = {str(k).lower(): v for k, v in overrides.items()}
    stray = sorted(set(overrides) - set(registered))
    if stray:
        parser.error(f"--args: unknown model(s) {stray}; registered: {', '.join(registered)}")
    args.overrides = overrides
    if args.batch < 1 or args.seconds <= 0 or args.train_threads < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--batch, --seconds, --train-threads and --steps must be positive, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    rows = []
    for name in args.models:
        kwargs = args.overrides.get(name, {})
        torch.manual_seed(0)
        try:
            model = build_model(name, **kwargs)
        except ValueError as err:
            console.print(f"[red]{name}: {err}[/red]")
            return 2
        console.print(f"[dim]{name}: counting and timing...[/dim]")
        macs = macs_per_second(model, RTF_SECONDS)
        rtf = real_time_factor(model, seconds=RTF_SECONDS, threads=1, repeats=3)
        step = train_step_seconds(model, args.batch, args.seconds, args.train_threads, args.steps, args.warmup)
        rows.append({"model": name, "overrides": kwargs, "config": model.config,
                     "parameters": model.num_parameters, "macs_per_second": macs,
                     "real_time_factor_1_thread": rtf, "train_step_seconds": step})

    table = Table(title=f"hushkit models on {platform.machine()} CPU, torch {torch.__version__}",
                  caption=f"GMAC/s: weight multiply-accumulates (conv / matmul / RNN) per second of audio. "
                          f"RTF: inference forward on {RTF_SECONDS:g} s, batch 1, 1 thread, median of 3. "
                          f"Step: training step, batch {args.batch} x {args.seconds:g} s, fwd + bwd + AdamW, "
                          f"compressed-spectral loss, {args.train_threads} threads, median of {args.steps} after "
                          f"{args.warmup} warm-up.")
    table.add_column("model")
    table.add_column("overrides")
    table.add_column("params", justify="right")
    table.add_column("GMAC/s", justify="right")
    table.add_column("RTF (1 thr)", justify="right")
    table.add_column("step (s)", justify="right")
    for row in rows:
        table.add_row(row["model"], json.dumps(row["overrides"]) if row["overrides"] else "-",
                      f"{row['parameters'] / 1e6:.3f} M", f"{row['macs_per_second'] / 1e9:.3f}",
                      f"{row['real_time_factor_1_thread']:.4f}", f"{row['train_step_seconds']:.3f}")
    console.print(table)

    if args.json is not None:
        report = {"torch": torch.__version__, "machine": platform.machine(), "python": sys.version.split()[0],
                  "rtf_seconds": RTF_SECONDS, "batch": args.batch, "seconds": args.seconds,
                  "train_threads": args.train_threads, "steps": args.steps, "warmup": args.warmup,
                  "loss": {"compressed_magnitude": 0.7, "compressed_complex": 0.3}, "models": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
