"""Which architectures train to bit-identical weights under which CPU settings, and what each step costs.

Trains every architecture of params.yaml (its real model_args, loss and optimizer; synthetic audio, a few steps, the
discriminator's step included for SEGAN) in a fresh process per setting, and prints, per architecture, whether its
weights equal those of the group's first setting bit for bit, and the seconds per step after the first.

A setting is "NAME=THREADS [VAR=VALUE ...] [pin=ISA]": THREADS is the machine's default thread count (OMP_NUM_THREADS,
as a machine with that many cores would have), VAR=VALUE are environment variables set before Python starts (as a
CPU without AVX-512 would make the libraries choose: ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
MKL_CBWR=AVX2), and pin=ISA runs hushkit.training.determinism.pin_cpu(2, ISA) in the process, as the train stage
does with `threads: 2` and `cpu_isa: ISA`.

    python benchmarks/determinism.py                      # unpinned, then pinned (the groups below)
    python benchmarks/determinism.py --arch segan --steps 5 --batch 16 --setting "a=2" --setting "b=2 pin=avx2"
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVX2_CPU = "ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2"
GROUPS = {
    "unpinned (each machine's own choice)": [
        "this CPU, 2 cores=2", "again=2", "1 core=1", f"AVX2-only CPU=2 {AVX2_CPU}"],
    "pinned (threads: 2, cpu_isa: avx2)": [
        "this CPU, 2 cores=2 pin=avx2", "1 core=1 pin=avx2", f"AVX2-only CPU=2 {AVX2_CPU} pin=avx2"],
}


def train_and_hash(arch: str, steps: int, batch: int) -> tuple[str, float]:
    """sha256 of the weights (the discriminator's too) after `steps` training steps from a seeded start, and the
    mean seconds of the steps after the first."""
    import numpy as np
    import pandas as pd
    import torch

    from hushkit.config import TrainParams
    from hushkit.models import build_model
    from hushkit.params import load_params
    from hushkit.training.data import PackedSplit
    from hushkit.training.loop import Trainer

    rate = 16000
    settings = TrainParams.parse(load_params(ROOT / "params.yaml")["train"], "train").config(arch)
    segment = int(round((settings.segment_seconds or 1.0) * rate))
    rng = np.random.default_rng(0)
    length, count = segment + rate // 2, 8
    t = np.arange(length) / rate
    clean = np.concatenate([0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) for _ in range(count)])
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    index = pd.DataFrame({"id": [f"u{i}" for i in range(count)], "offset": np.arange(count) * length,
                          "length": [length] * count})
    split = PackedSplit(clean=clean.astype(np.float32), noisy=noisy.astype(np.float32), index=index)
    torch.manual_seed(0)
    model = build_model(arch, sample_rate=rate, **settings.model_args)
    model.prepare(torch.from_numpy(split.random_batch(16, segment, np.random.default_rng(0))[0]))
    config = replace(settings, epochs=1, steps_per_epoch=steps, batch_size=batch, segment=segment)
    trainer = Trainer(model, split, split, config, torch.device("cpu"))
    trainer.begin_epoch(config.adversarial.start_epoch)   # SEGAN: the discriminator's step runs too
    started = time.perf_counter()
    for step in range(steps):
        if step == 1:
            started = time.perf_counter()
        trainer.train_step(*(torch.from_numpy(a) for a in split.random_batch(batch, segment, trainer.rng)))
    seconds = (time.perf_counter() - started) / max(1, steps - 1)
    digest = hashlib.sha256()
    states = [model.state_dict()] + ([trainer.hooks["adversarial"].state_dict()["discriminator"]]
                                     if "adversarial" in trainer.hooks else [])
    for state in states:
        for key, value in sorted(state.items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest(), seconds


def run_setting(setting: str, archs: list[str], steps: int, batch: int) -> dict[str, tuple[str, float]]:
    name, _, rest = setting.partition("=")
    threads, *words = rest.split()
    pin = [w.split("=", 1)[1] for w in words if w.startswith("pin=")]
    variables = dict(w.split("=", 1) for w in words if not w.startswith("pin="))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **variables}
    done = subprocess.run([sys.executable, __file__, "--child", "--steps", str(steps), "--batch", str(batch),
                           *(["--pin", pin[0]] if pin else []), *[x for a in archs for x in ("--arch", a)]],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name}: {done.stderr[-3000:]}")
    return {arch: tuple(value) for arch, value in json.loads(done.stdout.splitlines()[-1]).items()}


def compare(title: str, settings: list[str], archs: list[str], steps: int, batch: int) -> None:
    names = [s.partition("=")[0] for s in settings]
    results = [run_setting(s, archs, steps, batch) for s in settings]
    print(f"\n{title}: bit-for-bit against '{names[0]}' ({steps} steps of batch {batch}; s/step after the first)")
    print(f"{'architecture':<13}" + "".join(f"{name[:30]:>32}" for name in names))
    for arch in archs:
        reference = results[0][arch][0]
        cells = [("reference" if i == 0 else "same" if r[arch][0] == reference else "DIFFERENT")
                 + f" {r[arch][1]:6.3f}" for i, r in enumerate(results)]
        print(f"{arch:<13}" + "".join(f"{cell:>32}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="architecture (repeatable; default: params' list)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--setting", action="append", help='"NAME=THREADS [VAR=VALUE ...] [pin=ISA]" (repeatable)')
    parser.add_argument("--json", action="store_true", help="print {setting: {arch: sha256}} instead of tables")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        if args.pin:
            from hushkit.training.determinism import pin_cpu

            pin_cpu(2, args.pin)
        else:
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        print(json.dumps({arch: train_and_hash(arch, args.steps, args.batch) for arch in args.arch}))
        return
    from hushkit.params import load_params

    archs = args.arch or load_params(ROOT / "params.yaml")["train"]["architectures"]
    groups = {"given settings": args.setting} if args.setting else GROUPS
    if args.json:
        print(json.dumps({setting.partition("=")[0]: {arch: value[0] for arch, value in
                                                      run_setting(setting, archs, args.steps, args.batch).items()}
                          for settings in groups.values() for setting in settings}))
        return
    for title, settings in groups.items():
        compare(title, settings, archs, args.steps, args.batch)


if __name__ == "__main__":
    main()
