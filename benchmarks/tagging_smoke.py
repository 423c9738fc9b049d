"""Tagging smoke experiment: build tagging clips from the synthetic corpus with the mix stage's splits, train tagcnn
and gcnn with the Trainer for a few hundred steps, and score both on the test clips beside chance:

    python benchmarks/tagging_smoke.py --work /tmp/tagging-smoke --steps 300

The corpus (the download stage on params.yaml's `download`, made smaller by --speakers, --sentences and
--noise-seconds) and the splits (the mix stage, without the test conditions) are built once under --work, by the
stages' own commands on a params file written there, and reused.
Prints lwlrap (overall, curated, noisy) and mAP per tagger, the chance lwlrap of the same clips, and per-class lwlrap
with 95 % bootstrap intervals.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from hushkit.config import TrainConfig
from hushkit.config.tagging import HELD_OUT_LEARN, ClipParams
from hushkit.io import read_table
from hushkit.models import build_model
from hushkit.params import deep_merge, load_params
from hushkit.tagging.categories import label_set
from hushkit.tagging.clips import plan_clips, render_clips
from hushkit.tagging.data import TaggingSplit, clip_scores
from hushkit.tagging.metrics import chance_lwlrap, lwlrap, mean_average_precision, per_class_lwlrap
from hushkit.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]


def corpus_and_pools(work: Path, args: argparse.Namespace) -> tuple[Path, pd.DataFrame]:
    """The synthetic corpus and the mix stage's pools.csv (every file's split), made by the stages' commands."""
    params = deep_merge(load_params(ROOT / "params.yaml"), {
        "download": {"sources": ["synthetic"],
                     "speech": {"speakers_per_language": args.speakers, "sentences_per_speaker": args.sentences},
                     "noise": {"seconds": args.noise_seconds}},
        "mix": {"mixtures_per_utterance": 1, "test_snr_db": [5],
                "conditions": {"unseen_noise": {"utterances": 0}, "reverberant": {"utterances": 0}}}})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    corpus, mixed = work / "corpus", work / "mix"
    stage = [sys.executable, "-m"]
    if not (corpus / "manifest.csv").is_file():
        subprocess.run([*stage, "hushkit.stages.download", "--params", str(work / "params.yaml"), "--out",
                        str(corpus)], check=True)
    if not (mixed / "pools.csv").is_file():
        subprocess.run([*stage, "hushkit.stages.mix", "--params", str(work / "params.yaml"), "--corpus",
                        str(corpus), "--out", str(mixed)], check=True)
    return corpus, read_table(mixed / "pools.csv")


def build_splits(corpus: Path, pools: pd.DataFrame, params: ClipParams) -> tuple[list[str], dict[str, TaggingSplit]]:
    labels, held_out = label_set(pools, learn_held_out=params.held_out == HELD_OUT_LEARN)
    print(f"labels: {list(labels.names)}" + (f" (held out of the denoisers' training: {held_out})" if held_out else ""))
    plan = plan_clips(pools, labels, params)
    rate = int(read_table(corpus / "manifest.csv").sample_rate.iat[0])
    audio, _ = render_clips(plan, corpus, rate, params)
    splits = {}
    for split in ("train", "val", "test"):
        keep = (plan.split == split).to_numpy()
        splits[split] = TaggingSplit(audio[keep], labels.targets(plan.labels[keep]), plan.subset[keep].to_numpy())
        counts = pd.Series(splits[split].subsets).value_counts().to_dict()
        print(f"{split}: {counts}")
    return list(labels.names), splits


def train(arch: str, labels: list[str], splits: dict[str, TaggingSplit], args: argparse.Namespace):
    torch.manual_seed(0)
    model = build_model(arch, labels=labels, **json.loads(args.model_args.get(arch, "{}")))
    segment = splits["train"].waveforms.shape[1]
    epochs = max(1, args.steps // args.steps_per_epoch)
    config = TrainConfig.parse({
        "epochs": epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch, "lr": args.lr,
        "weight_decay": 1e-4, "mixup_alpha": args.mixup, "ema_decay": args.ema, "schedule": {"name": "onecycle"},
        "grad_norms": {"per_layer": True}, "mixed_precision": "fp32"}, "train", segment=segment)
    model.prepare(splits["train"].prepare_batch(64, segment, seed=0))
    started = time.perf_counter()
    trainer = Trainer(model, splits["train"], splits["val"], config, torch.device("cpu"))
    history = trainer.fit()
    seconds = time.perf_counter() - started
    return model, history, seconds


def score(name: str, model, test: TaggingSplit, labels: list[str]) -> dict:
    scores = clip_scores(model, test.waveforms)
    row = {"tagger": name, "n_params": model.num_parameters}
    for subset in ("all", "curated", "noisy"):
        keep = np.ones(len(test), bool) if subset == "all" else test.subsets == subset
        row[f"lwlrap_{subset}"] = lwlrap(test.targets[keep], scores[keep])
        row[f"chance_{subset}"] = chance_lwlrap(test.targets[keep])
    row["mAP"] = mean_average_precision(test.targets, scores)
    report = per_class_lwlrap(test.targets, scores, labels, resamples=1000, seed=0)
    return row, report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/tagging-smoke"))
    p.add_argument("--speakers", type=int, default=8, help="synthetic speakers per language")
    p.add_argument("--sentences", type=int, default=8, help="sentences per synthetic speaker")
    p.add_argument("--noise-seconds", type=float, default=6.0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--mixup", type=float, default=0.2)
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay (0: off)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--archs", nargs="+", default=["tagcnn", "gcnn"])
    p.add_argument("--model-args", type=json.loads, default={}, help='{"gcnn": "{\\"hidden\\": 32}"}')
    p.add_argument("--clips", type=json.loads, default={}, help="tagging.clips settings as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    corpus, pools = corpus_and_pools(args.work, args)
    labels, splits = build_splits(corpus, pools, ClipParams.parse(args.clips, "clips"))
    rows = []
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        for arch in args.archs:
            model, history, seconds = train(arch, labels, splits, args)
            row, report = score(arch, model, splits["test"], labels)
            row.update({"train_seconds": round(seconds, 1),
                        "best_val_bce": round(min(h["val_loss"] for h in history), 4),
                        "rnn_grad_last": history[-1].get("grad_norm_recurrent", float("nan"))})
            rows.append(row)
            print(f"\n{arch}: lwlrap {report.overall:.3f} [{report.low:.3f}, {report.high:.3f}] per class:")
            print(report.classes.to_string(index=False))
            for note in report.notes:
                print(f"  note: {note}")
            print(pd.DataFrame([row]).to_string(index=False), flush=True)
        print("\n" + pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
