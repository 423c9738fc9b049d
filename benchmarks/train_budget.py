"""Training-budget benchmark: train one architecture for a given number of steps on the pipeline's packed features
(data/features) and score it on a subset of the test split (data/mix), printing the gain over the noisy input.
Used to choose each architecture's defaults in params.yaml under the CPU budget, e.g.

    MALLOC_MMAP_THRESHOLD_=4294967296 python benchmarks/train_budget.py crnn --steps 300 \
        --loss '{"compressed_magnitude": 0.7, "compressed_complex": 0.3, "si_sdr": 0.001}'
"""
import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
import torch

from hushkit.audio import read_audio
from hushkit.inference import enhance_waveform
from hushkit.io import read_table
from hushkit.metrics import score_pairs
from hushkit.models import build_model
from hushkit.training.data import PackedSplit
from hushkit.config import TrainConfig
from hushkit.training.loop import Trainer

p = argparse.ArgumentParser()
p.add_argument("arch"); p.add_argument("--args", default="{}"); p.add_argument("--loss", default='{"compressed_magnitude":0.7,"compressed_complex":0.3,"si_sdr":0.001}')
p.add_argument("--steps", type=int, default=300); p.add_argument("--epochs", type=int, default=5)
p.add_argument("--batch", type=int, default=16); p.add_argument("--lr", type=float, default=0.004)
p.add_argument("--ema", type=float, default=0.99); p.add_argument("--seg", type=float, default=2.0)
p.add_argument("--files", type=int, default=80); p.add_argument("--time-only", action="store_true")
p.add_argument("--extra", default="{}", help="more train settings as JSON, as params.yaml writes them")
p.add_argument("--features", default="data/features"); p.add_argument("--mix", default="data/mix")
a = p.parse_args()
torch.manual_seed(0); np.random.seed(0)
F, M = a.features, a.mix
train, val = PackedSplit.load(F + "/train"), PackedSplit.load(F + "/val")
model = build_model(a.arch, sample_rate=16000, **json.loads(a.args))
seg = int(a.seg * 16000)
model.prepare(torch.from_numpy(train.random_batch(64, seg, np.random.default_rng(0))[0]))
cfg = TrainConfig.parse({"epochs": a.epochs, "batch_size": a.batch, "steps_per_epoch": a.steps // a.epochs, "lr": a.lr,
                        "weight_decay": 1e-4, "seed": 0, "loss": json.loads(a.loss), "ema_decay": a.ema,
                        **json.loads(a.extra)}, "train", segment=seg)
tr = Trainer(model, train, val, cfg, torch.device("cpu"))
if a.time_only:
    rng = np.random.default_rng(0); ts = []
    for i in range(8):
        n, c = train.random_batch(a.batch, seg, rng); t = time.perf_counter(); tr.train_step(torch.from_numpy(n), torch.from_numpy(c)); ts.append(time.perf_counter() - t)
    print(f"{a.arch} {a.args} params={sum(p.numel() for p in model.parameters())} step={np.median(ts[2:]):.3f}s"); sys.exit()
t0 = time.perf_counter(); tr.fit(); tt = time.perf_counter() - t0
model.eval()
test = read_table(M + "/manifest.csv").query("split == 'test'").sort_values("id")
test = test.sample(min(a.files, len(test)), random_state=0)  # every SNR level and category, same files each run
jobs, keys = [], []
t1 = time.perf_counter()
with torch.no_grad():
    for r in test.itertuples():
        c, _ = read_audio(M + "/" + r.clean_path); n, _ = read_audio(M + "/" + r.noisy_path)
        jobs += [(c, n, 16000), (c, enhance_waveform(model, n), 16000)]; keys += ["noisy", "model"]
inf = time.perf_counter() - t1
s = pd.DataFrame(score_pairs(jobs, workers=2)); s["sys"] = keys
m = s.groupby("sys").mean(numeric_only=True)
d = m.loc["model"] - m.loc["noisy"]
print(f"RESULT {a.arch} args={a.args} loss={a.loss} steps={a.steps} batch={a.batch} lr={a.lr} extra={a.extra} train={tt:.0f}s infer={inf:.1f}s "
      f"dPESQ={d['pesq']:+.3f} dSISDR={d['si_sdr']:+.2f} dSTOI={d['stoi']:+.3f} noisySISDR={m.loc['noisy','si_sdr']:.2f}", flush=True)
