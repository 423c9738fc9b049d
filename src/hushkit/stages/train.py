"""train: fit one registered architecture on the packed features, log everything to MLflow, save a
self-describing checkpoint."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hushkit import tracking
from hushkit.checks import array_stats, suites, validate
from hushkit.inference import enhance_waveform
from hushkit.io import write_audio, write_json, write_table
from hushkit.models import build_model, save_checkpoint
from hushkit.stages._cli import stage_main
from hushkit.training.data import PackedSplit
from hushkit.training.loop import TrainConfig, Trainer, pick_device


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


def run(params: dict[str, Any], *, features: Path, out: Path, mlflow_params: dict[str, Any]) -> None:
    features, out = Path(features), Path(out)
    check_inputs(features, out / "checks" / "input_arrays.json")
    summary = json.loads((features / "summary.json").read_text())
    rate = int(summary["sample_rate"])
    torch.manual_seed(params["seed"])
    np.random.seed(params["seed"])
    device = pick_device(params.get("device", "auto"))

    train, val = PackedSplit.load(features / "train"), PackedSplit.load(features / "val")
    model = build_model(params["model"], sample_rate=rate, **(params.get("model_args") or {}))
    # Models that normalise their input learn the statistics from training data once, before the first step.
    model.prepare(torch.from_numpy(train.random_batch(64, summary["segment_samples"], np.random.default_rng(0))[0]))
    n_params = sum(p.numel() for p in model.parameters())
    config = TrainConfig(epochs=params["epochs"], batch_size=params["batch_size"],
                         steps_per_epoch=params["steps_per_epoch"], lr=params["lr"],
                         weight_decay=params["weight_decay"], segment=summary["segment_samples"],
                         seed=params["seed"], loss=params["loss"], ema_decay=params.get("ema_decay", 0.0))

    mlflow = tracking.setup(mlflow_params)
    with mlflow.start_run(run_name=f"train-{params['model']}") as run:
        mlflow.set_tags({"stage": "train", "architecture": params["model"], "device": str(device)})
        mlflow.log_params({**tracking.flatten(params, "train."), "model.n_params": n_params,
                           **tracking.flatten(model.config, "model.")})
        started = time.perf_counter()
        trainer = Trainer(model, train, val, config, device,
                          on_epoch=lambda metrics, epoch: mlflow.log_metrics(metrics, step=epoch))
        history = trainer.fit()
        train_seconds = time.perf_counter() - started
        mlflow.log_metrics({"best_val_loss": trainer.best_val, "train_seconds": train_seconds})
        log_audio_examples(mlflow, model, val, rate, params.get("audio_examples", 3))
        model = model.cpu().eval()
        save_checkpoint(out / "model.pt", model, epoch=len(history), best_val_loss=trainer.best_val,
                        train_params=params)
        mlflow.log_artifact(str(out / "model.pt"), artifact_path="checkpoint")
        write_table(out / "history.csv", pd.DataFrame(history))
        write_json(out / "run.json", {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id})
        write_json(out / "metrics.json", {"best_val_loss": trainer.best_val, "n_params": n_params,
                                          "epochs": len(history), "train_seconds": round(train_seconds, 1)})
    print(f"train: {params['model']} ({n_params} parameters), best val loss {trainer.best_val:.4f} "
          f"in {train_seconds:.0f} s on {device}")


def main(argv: list[str] | None = None) -> None:
    stage_main("train", run, argv, sections={"mlflow_params": "mlflow"})


if __name__ == "__main__":
    main()
