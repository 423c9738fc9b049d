"""Pack a subset of the pipeline's data (200 train, 32 val, 64 test utterances) as int16 + lzma, ~49 MB, so it
travels to a GPU host whose image has neither the data nor hushkit's audio dependencies. Run from the repo root
after `dvc repro features`:  python benchmarks/gpu_sweep/pack.py   (writes benchmarks/gpu_sweep/data/)."""
import lzma, os, numpy as np, pandas as pd, soundfile as sf
from hushkit.training.data import PackedSplit
rng = np.random.default_rng(0)
def q(x): return np.clip(np.round(np.asarray(x) * 32767), -32768, 32767).astype(np.int16)
def pack(name, pairs):
    cs, ns, idx, off = [], [], [], 0
    for i, (c, n) in pairs:
        cs.append(q(c)); ns.append(q(n)); idx.append((i, off, len(c))); off += len(c)
    blob = np.concatenate(cs).tobytes() + np.concatenate(ns).tobytes()
    open(f"{OUT}/{name}.xz", "wb").write(lzma.compress(blob, preset=1))
    pd.DataFrame(idx, columns=["id", "offset", "length"]).to_csv(f"{OUT}/{name}.csv", index=False)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
os.makedirs(OUT, exist_ok=True)
tr = PackedSplit.load("data/features/train"); va = PackedSplit.load("data/features/val")
rows = sorted(rng.choice(len(tr.index), 200, replace=False)); pack("train", [(tr.index.id.iat[r], tr.utterance(r)) for r in rows])
rows = sorted(rng.choice(len(va.index), 32, replace=False)); pack("val", [(va.index.id.iat[r], va.utterance(r)) for r in rows])
m = pd.read_csv("data/mix/manifest.csv").query("split == 'test'").sort_values("id").sample(64, random_state=0)
pairs = []
for r in m.itertuples():
    c, _ = sf.read("data/mix/" + r.clean_path, dtype="float32"); n, _ = sf.read("data/mix/" + r.noisy_path, dtype="float32")
    pairs.append((r.id, (c, n)))
pack("test", pairs)
m.to_csv(f"{OUT}/test_manifest.csv", index=False)
