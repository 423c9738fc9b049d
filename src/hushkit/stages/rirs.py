"""rirs: the bank of room impulse responses that reverberation draws from, simulated once (and cached by DVC).

    out/rirs.npy    (count, max_seconds * rate) float32, each RIR aligned (direct path at sample 0, peak 1),
                    zero-padded to one length
    out/index.csv   one row per RIR: id, split (train | val | test), source (simulated | the user's file), rt60 (s,
                    measured by Schroeder integration), rt60_target, room size, source-microphone distance, length
    out/rejected.csv  user RIR files that could not be used, with the reason (never fatal)

Simulated rooms are random shoeboxes (`room` size ranges) built by the image-source method for a target RT60 drawn
uniformly from `rt60`; a room whose measured RT60 falls outside that range is rebuilt for a corrected target, so
every simulated RIR's measured RT60 lies in the range. Each RIR draws from its own stream of `seed`, so the bank is
the same on every machine and a larger `count` only appends. `splits` keeps RIRs for validation and for the test's
reverberant condition apart from the training ones, like speakers and noise clips.
"""
from __future__ import annotations

import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hushkit import reverb
from hushkit.audio import AudioReadError, read_audio, resample, to_mono
from hushkit.checks import array_stats, suites, validate
from hushkit.config import DownloadParams, RirsParams
from hushkit.config.data import RirSplits
from hushkit.io import write_npy, write_table
from hushkit.stages._cli import stage_main

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
ATTEMPTS = 6  # room rebuilds (corrected RT60 target, then a new room) before giving up on one RIR


def simulate_one(seed: int, index: int, params: RirsParams, rate: int) -> dict[str, Any]:
    """RIR number `index` of the bank: its own random stream, rebuilt until the measured RT60 is in range."""
    rng = np.random.default_rng([int(seed), int(index)])
    low, high = params.rt60.low, params.rt60.high
    size = {"length": params.room.length, "width": params.room.width, "height": params.room.height}
    wanted = float(rng.uniform(low, high))
    target, room, measured, rir, problem = wanted, None, float("nan"), None, ""
    for attempt in range(ATTEMPTS):
        if room is None or attempt % 3 == 0:  # a fresh room every third attempt
            room = reverb.draw_room(rng, target, size)
        room = reverb.Room(room.dims, room.source, room.mic, target)
        try:
            rir = reverb.simulate(room, rate)
        except ValueError as err:  # Sabine's inversion has no solution (the room is too large for the RT60)
            measured, problem = float("nan"), f"; pyroomacoustics: {err}"
            continue
        measured, problem = reverb.schroeder_rt60(rir, rate), ""
        if low <= measured <= high:
            break
        # Sabine's formula misjudges small or flat rooms; aim the next build at what this one missed by.
        target = float(np.clip(target * wanted / measured, 0.05, 3.0)) if np.isfinite(measured) else wanted
    else:
        raise ValueError(f"rirs: RIR {index} (seed {seed}) did not reach an RT60 in [{low}, {high}] s in {ATTEMPTS} "
                         f"room builds (last {measured:.3f} s{problem}); widen rirs.rt60 or rirs.room")
    return {"rir": reverb.align(rir, rate, params.max_seconds), "source": "simulated",
            "rt60": measured, "rt60_target": room.rt60_target, "room_dims": "x".join(f"{d:.2f}" for d in room.dims),
            "distance": float(np.linalg.norm(np.subtract(room.source, room.mic)))}


def read_local(folder: Path, params: RirsParams, rate: int) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The user's RIR files (any format soundfile reads, any rate and channel count: mixed to mono, resampled),
    aligned like the simulated ones; files that are not usable are listed with the reason."""
    rows, rejected = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        try:
            audio, sr = read_audio(path)
        except AudioReadError as err:
            rejected.append({"path": str(path), "reason": str(err)})
            continue
        rir = resample(to_mono(audio), sr, rate).astype(np.float64)
        if not np.all(np.isfinite(rir)) or np.max(np.abs(rir)) == 0:
            rejected.append({"path": str(path), "reason": "silent or not finite"})
            continue
        rows.append({"rir": reverb.align(rir, rate, params.max_seconds), "source": str(path),
                     "rt60": reverb.schroeder_rt60(rir, rate), "rt60_target": np.nan, "room_dims": "",
                     "distance": np.nan})
    return rows, rejected


def assign_splits(count: int, shares: RirSplits, rng: np.random.Generator) -> list[str]:
    """`count` RIRs into train / val / test by the `shares` of val and test (at least one each when shared)."""
    n_val = int(np.ceil(count * shares.val))
    n_test = int(np.ceil(count * shares.test))
    if n_val + n_test >= count:
        raise ValueError(f"rirs.splits (val {shares.val}, test {shares.test}) leave no training RIR out of {count}; "
                         "lower the shares or raise count")
    splits = np.array(["train"] * count, dtype=object)
    order = rng.permutation(count)
    splits[order[:n_test]] = "test"
    splits[order[n_test : n_test + n_val]] = "val"
    return list(splits)


def split_by_name(path: str, shares: RirSplits, seed: int) -> str:
    """A user RIR's split, drawn from its file name: stable when files are added or removed."""
    draw = np.random.default_rng([seed, zlib.crc32(Path(path).name.encode())]).random()
    test, val = shares.test, shares.val
    return "test" if draw < test else "val" if draw < test + val else "train"


def run(section: dict[str, Any], *, out: Path, download_params: dict[str, Any]) -> None:
    """`section`: params.yaml's `rirs`; `download_params`: its `download` (the sample rate)."""
    out = Path(out)
    params = RirsParams.parse(section, "rirs")
    rate = DownloadParams.parse(download_params, "download").sample_rate
    count, seed = params.count, params.seed
    low, high = params.rt60.low, params.rt60.high
    with ProcessPoolExecutor(max_workers=2) as pool:
        simulated = list(pool.map(simulate_one, [seed] * count, range(count), [params] * count, [rate] * count))
    local, rejected = ([], [])
    if params.local:
        folder = Path(params.local)
        if not folder.is_dir():
            raise FileNotFoundError(f"rirs.local: {folder} is not a folder")
        local, rejected = read_local(folder, params, rate)
    splits = assign_splits(count, params.splits, np.random.default_rng([seed, count])) if count else []
    splits += [split_by_name(entry["source"], params.splits, seed) for entry in local]
    entries = simulated + local
    if not entries:
        raise ValueError("rirs: count is 0 and no local RIRs: nothing to reverberate with")
    length = int(round(params.max_seconds * rate))
    bank = np.zeros((len(entries), length), dtype=np.float32)
    for row, entry in enumerate(entries):
        bank[row, : len(entry["rir"])] = entry["rir"]
    index = pd.DataFrame([{"id": f"rir{i:04d}", "split": split, **{k: v for k, v in e.items() if k != "rir"},
                           "length": len(e["rir"])} for i, (e, split) in enumerate(zip(entries, splits))])
    checks = out / "checks"
    validate(pd.DataFrame([array_stats("rirs.npy", bank.reshape(-1))]), suites.feature_arrays(),
             name="rirs output: bank", report_path=checks / "bank.json", id_column="name")
    validate(index, suites.rir_index(low, high, rate), name="rirs output: index", report_path=checks / "index.json",
             id_column="id")
    write_npy(out / "rirs.npy", bank)
    write_table(out / "index.csv", index)
    write_table(out / "rejected.csv", pd.DataFrame(rejected, columns=["path", "reason"]))
    per_split = index.split.value_counts().to_dict()
    print(f"rirs: {len(index)} RIRs ({len(simulated)} simulated, {len(local)} local, {len(rejected)} rejected); "
          f"RT60 {index.rt60.min():.2f}-{index.rt60.max():.2f} s; "
          + ", ".join(f"{s} {per_split.get(s, 0)}" for s in ("train", "val", "test")))


def main(argv: list[str] | None = None) -> None:
    stage_main("rirs", run, argv, sections={"download_params": "download"})


if __name__ == "__main__":
    main()
