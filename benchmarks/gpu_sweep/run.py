"""GPU sweep: train a list of jobs (params.yaml's settings for one architecture + overrides, see jobs.json) in
parallel worker processes on CUDA (or "device": "cpu"), score SI-SDR / STOI / ESTOI (and PESQ-WB where `pesq`
imports) on the packed test subset, append one JSON line per job to $OUT/results.jsonl. Run from the repo root:

    OUT=/tmp/sweep JOBS=benchmarks/gpu_sweep/jobs.json WORKERS=8 python benchmarks/gpu_sweep/run.py

TIMING=1 first prints each architecture's median optimizer-step time alone on the GPU. pystoi may be carried
unpacked under benchmarks/gpu_sweep/site/ (see pack.py's docstring for why)."""
import sys, types, os, json, lzma, time, tarfile, traceback
# The GPU image has neither soundfile nor soxr: hushkit imports them at module level, training never calls them.
sys.modules.setdefault("soundfile", types.ModuleType("soundfile"))
sys.modules.setdefault("soxr", types.ModuleType("soxr"))
import numpy as np, pandas as pd, torch, yaml
import multiprocessing as mp
OUT = os.environ.get("OUT", "/tmp/out")
D = os.path.dirname(os.path.abspath(__file__))

def load(name, dtype=np.float32):
    idx = pd.read_csv(f"{D}/data/{name}.csv")
    raw = np.frombuffer(lzma.decompress(open(f"{D}/data/{name}.xz", "rb").read()), dtype=np.int16)
    half = len(raw) // 2
    return raw[:half].astype(np.float32) / 32767, raw[half:].astype(np.float32) / 32767, idx

def train_config(arch, overrides, val_segment):
    """params.yaml's settings for `arch` with `overrides` merged in, its crop length and loop config: the train
    stage's own resolution (hushkit.stages.train.run)."""
    from hushkit.config import TrainParams
    from hushkit.models import available_models
    from hushkit.params import architecture_params, deep_merge
    params = yaml.safe_load(open("params.yaml"))["train"]
    params["models"][arch] = deep_merge(params["models"][arch], overrides)
    settings = architecture_params(params, arch, available_models())
    seg = int(round((settings.get("segment_seconds") or 2.0) * 16000))  # as the train stage: the features' 2-s crop
    return settings, seg, TrainParams.parse(params, "train").config(arch, segment=seg, val_segment=val_segment)

def job(spec):
    torch.set_num_threads(spec.get("threads", 2))
    sys.path[:0] = ["src", D + "/site"]
    from hushkit.training.data import PackedSplit
    from hushkit.training.loop import Trainer
    from hushkit.models import build_model, save_checkpoint
    from hushkit.metrics import si_sdr
    from pystoi import stoi
    try:
        from pesq import pesq as _pesq
    except Exception:
        _pesq = None
    name, arch = spec["name"], spec["arch"]
    try:
        c, n, i = load("train"); tr = PackedSplit(c, n, i)
        c, n, i = load("val"); va = PackedSplit(c, n, i)
        settings, seg, cfg = train_config(arch, spec.get("overrides", {}), spec.get("val_segment", 32000))
        torch.manual_seed(cfg.seed); np.random.seed(cfg.seed)
        dev = torch.device(spec.get("device", "cuda") if torch.cuda.is_available() else "cpu")
        model = build_model(arch, sample_rate=16000, **(settings.get("model_args") or {}))
        model.prepare(torch.from_numpy(tr.random_batch(64, seg, np.random.default_rng(cfg.seed))[0]))
        t0 = time.perf_counter()
        trainer = Trainer(model, tr, va, cfg, dev)
        hist = trainer.fit(); tt = time.perf_counter() - t0
        model.eval()
        c, n, i = load("test")
        rows = []
        with torch.no_grad():
            for r in i.itertuples():
                cl, no = c[r.offset:r.offset + r.length], n[r.offset:r.offset + r.length]
                en = model(torch.from_numpy(no)[None].to(dev))[0].cpu().numpy()
                rows.append({"n_sisdr": si_sdr(cl, no), "m_sisdr": si_sdr(cl, en),
                             "n_stoi": stoi(cl, no, 16000), "m_stoi": stoi(cl, en, 16000),
                             "n_estoi": stoi(cl, no, 16000, extended=True), "m_estoi": stoi(cl, en, 16000, extended=True),
                             **({"n_pesq": _pesq(16000, cl, no, "wb"), "m_pesq": _pesq(16000, cl, en, "wb")} if _pesq else {})})
        m = pd.DataFrame(rows).mean()
        res = {"name": name, "arch": arch, "overrides": spec.get("overrides", {}), "train_s": round(tt, 1),
               "steps": cfg.epochs * cfg.steps_per_epoch, "dSISDR": round(m.m_sisdr - m.n_sisdr, 2),
               "dSTOI": round(m.m_stoi - m.n_stoi, 4), "dESTOI": round(m.m_estoi - m.n_estoi, 4),
               "dPESQ": round(m.m_pesq - m.n_pesq, 3) if "m_pesq" in m else None, "noisyPESQ": round(m.n_pesq, 3) if "n_pesq" in m else None,
               "noisySISDR": round(m.n_sisdr, 2), "best_val": trainer.best_val,
               "val": [round(h["val_loss"], 5) for h in hist], "train": [round(h["train_loss"], 5) for h in hist],
               "gnorm": [round(h["grad_norm_mean"], 4) for h in hist]}
        os.makedirs(f"{OUT}/ck", exist_ok=True)
        if spec.get("save"): save_checkpoint(f"/tmp/ck/{name}.pt", model.cpu(), epoch=len(hist), best_val_loss=trainer.best_val, train_params=settings)
    except Exception as e:
        res = {"name": name, "error": traceback.format_exc()[-1500:]}
    with open(f"{OUT}/results.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")
    print("DONE", json.dumps(res), flush=True)
    return res

def step_timing(arch, dev):
    from hushkit.training.data import PackedSplit
    from hushkit.training.loop import Trainer
    from hushkit.models import build_model
    c, n, i = load("val"); va = PackedSplit(c, n, i)
    settings, seg, cfg = train_config(arch, {}, 32000)
    if cfg.adversarial_weight > 0: cfg.adversarial_start_epoch = 1  # time the full GAN step
    model = build_model(arch, sample_rate=16000, **(settings.get("model_args") or {}))
    tr = Trainer(model, va, va, cfg, torch.device(dev)); rng = np.random.default_rng(0); ts = []
    for k in range(25):
        nb, cb = va.random_batch(cfg.batch_size, seg, rng)
        if dev == "cuda": torch.cuda.synchronize()
        t = time.perf_counter(); tr.train_step(tr._tensor(nb), tr._tensor(cb))
        if dev == "cuda": torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts[5:]))

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True); os.makedirs("/tmp/ck", exist_ok=True)
    sys.path.insert(0, "src")
    print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    specs = json.load(open(os.environ.get("JOBS", f"{D}/jobs.json")))
    deadline = time.time() + float(os.environ.get("SWEEP_SECONDS", "330"))
    if os.environ.get("TIMING", "1") == "1":
        torch.set_num_threads(2)
        timing = {a: step_timing(a, "cuda") for a in ["crced", "crnn", "densenet", "autoencoder", "convtasnet", "segan"]}
        print("GPU step seconds (batch as params, uncontended):", json.dumps(timing), flush=True)
        json.dump(timing, open(f"{OUT}/gpu_step_seconds.json", "w"))
    ctx = mp.get_context("spawn")
    os.environ["PYTHONPATH"] = "src:" + D + "/site:" + os.environ.get("PYTHONPATH", "")
    with ctx.Pool(int(os.environ.get("WORKERS", "8"))) as pool:
        rs = [pool.apply_async(job, (s,)) for s in specs]
        for r in rs:
            try: r.get(timeout=max(1, deadline - time.time()))
            except Exception as e: print("TIMEOUT/ERR", e, flush=True)
        pool.terminate()
    with tarfile.open(f"{OUT}/ckpts.tar", "w") as t:
        for f in sorted(os.listdir("/tmp/ck")): t.add(f"/tmp/ck/{f}", arcname=f)
    print("finished", flush=True)
