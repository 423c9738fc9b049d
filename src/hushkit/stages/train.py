"""train: fit one registered architecture (train@<arch>) on the packed features, log everything to an MLflow child
run of the pipeline's parent run (tagged with the checkpoint's sha256, by which evaluate and export find it), save a
self-describing checkpoint. A killed run resumes from its last saved epoch. In a sweep's trial (hushkit.sweep), every
epoch's validation loss is reported to the study, whose pruner may stop the run there.

Started by torchrun with several processes (docs/training.md, "Many GPUs"), every process trains its part of each
batch and rank 0 alone logs, prints and writes the outputs below.

    out/model.pt        the checkpoint (the same weights give the same bytes)
    out/history.csv     per-epoch losses, gradient norms and learning rate
    out/metrics.json    best validation loss, size and cost of the model
    out/timing.json     training time, in total and per epoch (not a DVC output: see hushkit.timing)
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hushkit import tracking
from hushkit.checks import array_stats, suites, validate
from hushkit.config import TrainConfig, TrainParams
from hushkit.config.train import AttenuationLimitParams
from hushkit.inference import enhance_waveform
from hushkit.audio import write_audio
from hushkit.io import sha256_file, write_json, write_table
from hushkit.models import available_models, build_model, save_checkpoint
from hushkit.models.complexity import macs_per_second
from hushkit.params import architecture_params
from hushkit.stages._cli import stage_main
from hushkit.sweep.pruning import trial_reporter
from hushkit.timing import write_timing
from hushkit.training.calibration import choose_attenuation_limit
from hushkit.training.data import PackedSplit
from hushkit.training.determinism import environment, pin_cpu
from hushkit.training.distributed import (Processes, processes_wanted, run_under_torchrun, torchrun_processes,
                                          under_torchrun)
from hushkit.training.dynamic import training_source
from hushkit.training.loop import Trainer, pick_device
from hushkit.training.precision import autocast_dtype

# Resumable training state lives outside DVC's outputs (DVC deletes a stage's outputs before rerunning it).
RESUME_DIR = Path(".hushkit") / "resume"


def check_inputs(features: Path, report_path: Path) -> None:
    stats = [array_stats(f"{split}/{side}.npy", np.load(features / split / f"{side}.npy", mmap_mode="r"))
             for split in ("train", "val") for side in ("clean", "noisy")]
    validate(pd.DataFrame(stats), suites.feature_arrays(), name="train input: packed arrays",
             report_path=report_path, id_column="name")


def log_audio_examples(mlflow, model, val: PackedSplit, sample_rate: int, count: int) -> None:
    """A few validation utterances as noisy / enhanced / clean WAVs, to listen to beside the curves."""
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        for row in range(min(count, len(val.index))):
            clean, noisy = val.utterance(row)
            enhanced = enhance_waveform(model, noisy)
            name = val.index.id.iat[row]
            for kind, audio in (("noisy", noisy), ("enhanced", enhanced), ("clean", clean)):
                write_audio(Path(tmp) / f"{name}_{kind}.wav", np.asarray(audio), sample_rate, subtype="PCM_16")
        mlflow.log_artifacts(tmp, artifact_path="audio_examples")


def crop_samples(seconds: float | None, rate: int, default: int) -> int:
    """Training crop length in samples: the architecture's `segment_seconds`, else `default`."""
    if seconds is None:
        return default
    return max(1, int(round(seconds * rate)))


def resume_fingerprint(settings: dict[str, Any], features: Path) -> str:
    """What a saved training state must match to be resumed: these settings and this training data."""
    blob = json.dumps(settings, sort_keys=True) + sha256_file(features / "train" / "index.csv") + \
        sha256_file(features / "summary.json")
    return hashlib.sha256(blob.encode()).hexdigest()


def attenuation_limit(model, val: PackedSplit, settings: AttenuationLimitParams) -> float | None:
    """Set `model`'s attenuation limit as `settings` say (`auto`: chosen on validation STOI) and return it."""
    if settings.db == "auto":
        choice = choose_attenuation_limit(model, val, settings.choices_db, settings.stoi_tolerance,
                                          settings.utterances)
        print(f"{model.name}: {choice.describe()}")
        model.set_attenuation_limit(choice.limit_db)
    else:
        model.set_attenuation_limit(settings.db)
    return model.attenuation_limit_db


def run(train_params: dict[str, Any], *, arch: str, features: Path, out: Path, rirs: Path | None = None,
        state_dir: Path = RESUME_DIR, params: dict[str, Any]) -> None:
    """Train one architecture (`arch`, listed in train.architectures) with train.common + train.models.<arch>."""
    # The settings as written (recorded with the run and the checkpoint), and as the schema reads them.
    settings = architecture_params(train_params, arch, available_models())
    config = TrainParams.parse(train_params, "train").config(arch)
    device = pick_device(config.device)
    wanted = processes_wanted(config.processes, device)
    if wanted > 1 and not under_torchrun():
        # This stage's own command line, as that many processes (each then takes the branch below).
        status = run_under_torchrun(wanted, "hushkit.stages.train", sys.argv[1:])
        if status:
            sys.exit(status)
        return
    # First, before any tensor operation: the thread count and CPU kernels the weights depend on.
    pin_cpu(config.threads, config.cpu_isa)
    with torchrun_processes(device) as processes:
        train_and_record(settings, config, processes, arch=arch, features=Path(features), out=Path(out),
                         rirs=rirs, state_dir=Path(state_dir), params=params)


def train_and_record(settings: dict[str, Any], config: TrainConfig, processes: Processes, *, arch: str,
                     features: Path, out: Path, rirs: Path | None, state_dir: Path, params: dict[str, Any]) -> None:
    """Train in this process (one of `processes`); rank 0 also checks the inputs, logs the run to MLflow and
    writes the outputs."""
    processes.check_batch_size(config.batch_size)  # before any work
    if processes.is_main:
        check_inputs(features, out / "checks" / "input_arrays.json")
    summary = json.loads((features / "summary.json").read_text())
    rate = int(summary["sample_rate"])
    # Crop length: the features stage's default, or the architecture's own (shorter crops = cheaper steps).
    # Validation always scores the features stage's (longer) crop, whatever the training crop.
    segment = crop_samples(config.segment_seconds, rate, default=int(summary["segment_samples"]))
    config = replace(config, segment=segment, val_segment=int(summary["segment_samples"]))
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = processes.device
    precision = autocast_dtype(config.mixed_precision, device)  # None: float32

    train = training_source(config, features, rirs, rate, device)
    val = PackedSplit.load(features / "val")
    model = build_model(arch, sample_rate=rate, **config.model_args)
    # Models that normalise their input learn the statistics from training data once, before the first step.
    model.prepare(train.prepare_batch(64, segment, seed=config.seed).cpu())
    n_params = model.num_parameters
    macs = macs_per_second(model)
    state_path = state_dir / f"{arch}.pt"
    fingerprint = resume_fingerprint(settings, features)
    if not processes.is_main:
        Trainer(model, train, val, config, device, state_path=state_path, fingerprint=fingerprint,
                processes=processes).fit()
        return

    # A sweep's trial (hushkit.sweep): each epoch's validation loss goes to the study, which may prune the run.
    report_to_sweep = trial_reporter(config.epochs)
    mlflow = tracking.setup(params.get("mlflow", {}))
    parent = tracking.parent_run_id(mlflow, params)
    # An attempt killed outright (SIGKILL) left its run RUNNING: closed as KILLED here (see tracking.attempt_run).
    with tracking.attempt_run(mlflow, state_dir / f"{arch}.run.json", run_name=f"train-{arch}",
                              parent_run_id=parent) as run:
        mlflow.set_tags({"stage": "train", "architecture": arch, "device": str(device),
                         "processes": str(processes.world_size),
                         "precision": "float32" if precision is None else f"mixed {precision}"})
        machine = environment()   # what else the weights depend on: CPU, threads, kernel caps, library builds
        mlflow.set_tags({f"env.{key}": value for key, value in machine.items()})
        mlflow.log_params({**tracking.flatten(settings, "train."), "model.n_params": n_params,
                           **tracking.flatten(model.config, "model.")})
        mlflow.log_metrics({"n_params": n_params, "macs_per_second": macs})
        started = time.perf_counter()
        logged: set[int] = set()

        def log_epoch(metrics: dict[str, float], epoch: int) -> None:
            mlflow.log_metrics(metrics, step=epoch)
            logged.add(epoch)
            if report_to_sweep is not None:   # raises TrialPruned: the stage stops, its run ends FAILED
                report_to_sweep(metrics, epoch)

        trainer = Trainer(model, train, val, config, device, state_path=state_path, fingerprint=fingerprint,
                          on_epoch=log_epoch, processes=processes)
        history = trainer.fit()
        for row in history:   # epochs an earlier attempt trained (resumed from its state): this run's curves too
            if row["epoch"] not in logged:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        train_seconds = time.perf_counter() - started
        mlflow.log_metrics({"best_val_loss": trainer.best_val, "train_seconds": train_seconds})
        model = model.cpu().eval()
        limit = attenuation_limit(model, val, config.attenuation_limit)
        mlflow.set_tag("attenuation_limit_db", "none" if limit is None else f"{limit:g}")
        log_audio_examples(mlflow, model, val, rate, config.audio_examples)
        save_checkpoint(out / "model.pt", model, epoch=len(history), best_val_loss=trainer.best_val,
                        train_params=settings, environment=machine)
        mlflow.set_tag(tracking.CHECKPOINT_TAG, sha256_file(out / "model.pt"))
        mlflow.log_artifact(str(out / "model.pt"), artifact_path="checkpoint")
        epochs = pd.DataFrame(history)
        write_table(out / "history.csv", epochs.drop(columns=["epoch_seconds"], errors="ignore"))
        write_json(out / "metrics.json", {"best_val_loss": round(trainer.best_val, 6), "n_params": n_params,
                                          "gmacs_per_second": round(macs / 1e9, 4), "epochs": len(history),
                                          "attenuation_limit_db": limit})
        write_timing(out, {"train_seconds": round(train_seconds, 1), "device": str(device),
                           "epoch_seconds": [round(float(v), 2) for v in epochs.get("epoch_seconds", [])],
                           "mlflow_run_id": run.info.run_id})
    state_path.unlink(missing_ok=True)  # finished: nothing left to resume
    on = f"{processes.world_size} processes of {device.type}" if processes.distributed else str(device)
    print(f"train: {arch} ({n_params} parameters, {macs / 1e9:.2f} GMAC/s of audio), best val loss "
          f"{trainer.best_val:.4f} in {train_seconds:.0f} s on {on}"
          f"{'' if precision is None else f' (mixed precision, {precision})'}")


def main(argv: list[str] | None = None) -> None:
    stage_main("train", run, argv, sections={"params": "*"})


if __name__ == "__main__":
    main()
