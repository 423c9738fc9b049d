"""tag-train: fit one tagger (tag-train@<arch>, an architecture of tagging.architectures) on the tagging clips with
the Trainer the denoisers train with: binary cross-entropy on the clip logits, and mixup, the LR schedule, EMA or
SWA and the per-layer gradient norms as tagging.common and tagging.models.<arch> set them. It logs an MLflow child
run of the pipeline's parent run (tagged with the checkpoint's sha256, by which tag-evaluate finds it) and saves a
self-describing checkpoint whose labels are the clips'. A killed run resumes from its last saved epoch.

    out/model.pt        the checkpoint: the weights of the best validation loss (or their average)
    out/history.csv     per-epoch losses, gradient norms (per layer, recurrent) and learning rate
    out/metrics.json    best validation loss, parameters, epochs
    out/timing.json     training time (not a DVC output: see hushkit.timing)
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hushkit import tracking
from hushkit.checks import array_stats, suites, validate
from hushkit.config import TaggingParams
from hushkit.io import sha256_file, write_json, write_table
from hushkit.models import available_models, build_model, save_checkpoint
from hushkit.params import architecture_params
from hushkit.stages._cli import stage_main
from hushkit.tagging.data import TaggingSplit
from hushkit.timing import write_timing
from hushkit.training.determinism import environment, pin_cpu
from hushkit.training.loop import Trainer, pick_device

# Resumable training state lives outside DVC's outputs (DVC deletes a stage's outputs before rerunning it).
RESUME_DIR = Path(".hushkit") / "resume"


def load_splits(features: Path, report_path: Path) -> tuple[TaggingSplit, TaggingSplit]:
    """The training and validation clips, checked like tag-features left them."""
    splits = {split: TaggingSplit.load(features / split) for split in ("train", "val")}
    stats = [array_stats(f"{split}/{name}.npy", getattr(data, name)) for split, data in splits.items()
             for name in ("waveforms", "targets")]
    validate(pd.DataFrame(stats), suites.tagging_arrays(), name="tag-train input: clip arrays",
             report_path=report_path, id_column="name")
    return splits["train"], splits["val"]


def resume_fingerprint(settings: dict[str, Any], features: Path) -> str:
    """What a saved training state must match to be resumed: these settings and these clips."""
    blob = json.dumps(settings, sort_keys=True) + sha256_file(features / "train" / "clips.csv") + \
        sha256_file(features / "summary.json")
    return hashlib.sha256(blob.encode()).hexdigest()


def run(section: dict[str, Any], *, arch: str, features: Path, out: Path, state_dir: Path = RESUME_DIR,
        params: dict[str, Any]) -> None:
    """Train one tagger (`arch`, listed in tagging.architectures) with tagging.common + tagging.models.<arch>."""
    features, out, state_dir = Path(features), Path(out), Path(state_dir)
    settings = architecture_params(section, arch, available_models("tagger"), "tagging")
    config = TaggingParams.parse(section, "tagging").config(arch)
    pin_cpu(config.threads, config.cpu_isa)  # first, before any tensor operation
    train, val = load_splits(features, out / "checks" / "input_arrays.json")
    labels = json.loads((features / "labels.json").read_text())["labels"]
    rate = int(json.loads((features / "summary.json").read_text())["sample_rate"])
    segment = train.waveforms.shape[1]  # whole clips: a crop could cut a labelled sound out
    config = replace(config, segment=segment, val_segment=segment)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = pick_device(config.device)
    model = build_model(arch, labels=labels, sample_rate=rate, **config.model_args)
    model.prepare(train.prepare_batch(64, segment, seed=config.seed))
    n_params = model.num_parameters
    state_path = state_dir / f"tag-{arch}.pt"

    mlflow = tracking.setup(params.get("mlflow", {}))
    parent = tracking.parent_run_id(mlflow, params)
    with tracking.attempt_run(mlflow, state_dir / f"tag-{arch}.run.json", run_name=f"tag-train-{arch}",
                              parent_run_id=parent) as run:
        mlflow.set_tags({"stage": "tag-train", "architecture": arch, "kind": "tagger", "device": str(device)})
        machine = environment()
        mlflow.set_tags({f"env.{key}": value for key, value in machine.items()})
        mlflow.log_params({**tracking.flatten(settings, "tagging."), "model.n_params": n_params,
                           **tracking.flatten({k: v for k, v in model.config.items() if k != "labels"}, "model.")})
        mlflow.log_metrics({"n_params": n_params})
        started = time.perf_counter()
        logged: set[int] = set()

        def log_epoch(metrics: dict[str, float], epoch: int) -> None:
            mlflow.log_metrics(metrics, step=epoch)
            logged.add(epoch)

        trainer = Trainer(model, train, val, config, device, on_epoch=log_epoch, state_path=state_path,
                          fingerprint=resume_fingerprint(settings, features))
        history = trainer.fit()
        for row in history:  # epochs an earlier attempt trained (resumed from its state)
            if row["epoch"] not in logged:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        train_seconds = time.perf_counter() - started
        mlflow.log_metrics({"best_val_loss": trainer.best_val, "train_seconds": train_seconds})
        save_checkpoint(out / "model.pt", model.cpu().eval(), epoch=len(history), best_val_loss=trainer.best_val,
                        train_params=settings, environment=machine)
        mlflow.set_tag(tracking.CHECKPOINT_TAG, sha256_file(out / "model.pt"))
        mlflow.log_artifact(str(out / "model.pt"), artifact_path="checkpoint")
        epochs = pd.DataFrame(history)
        write_table(out / "history.csv", epochs.drop(columns=["epoch_seconds"], errors="ignore"))
        write_json(out / "metrics.json", {"best_val_bce": round(trainer.best_val, 6), "n_params": n_params,
                                          "epochs": len(history)})
        write_timing(out, {"train_seconds": round(train_seconds, 1), "device": str(device),
                           "epoch_seconds": [round(float(v), 2) for v in epochs.get("epoch_seconds", [])],
                           "mlflow_run_id": run.info.run_id})
    state_path.unlink(missing_ok=True)  # finished: nothing left to resume
    print(f"tag-train: {arch} ({n_params} parameters, {len(labels)} labels), best validation BCE "
          f"{trainer.best_val:.4f} in {train_seconds:.0f} s on {device}")


def main(argv: list[str] | None = None) -> None:
    stage_main("tag_train", run, argv, section="tagging", sections={"params": "*"})


if __name__ == "__main__":
    main()
