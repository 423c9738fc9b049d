"""mix: speaker- and noise-disjoint splits; each mixture = trimmed clean speech + noise at a drawn SNR.

Recorded pairs (a paired corpus such as VoiceBank+DEMAND) are not mixed: each noisy/clean recording is copied into
its split as it is (`origin` recorded), beside the mixtures (`origin` mixed), so training and evaluation use them
directly. Their SNR is measured the way the mixer measures it; `target_snr_db` is that to the nearest 5 dB, the
level the per-SNR evaluation groups them under."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import track

from hushkit.audio import read_audio, rms_db, trim_silence
from hushkit.checks import suites, validate
from hushkit.io import read_table, write_audio, write_table
from hushkit.mixing import mix_at_snr, noise_segment, snr_db, snr_level
from hushkit.stages._checks import check_audio_files, check_mixture_files
from hushkit.stages._cli import stage_main

SPLITS = ("train", "val", "test")


def split_speakers(speech: pd.DataFrame, n_val: int, n_test: int, rng: np.random.Generator) -> dict[str, str]:
    """speaker → split; held-out speakers are spread over the languages so every split hears each language."""
    speakers = speech.drop_duplicates("speaker").sort_values("speaker")
    if len(speakers) < n_val + n_test + 1:
        raise ValueError(f"{len(speakers)} speakers cannot make val={n_val}, test={n_test} and a train split")
    by_language = [list(rng.permutation(group.speaker.to_numpy())) for _, group in speakers.groupby("language")]
    order = [spk for rank in range(max(map(len, by_language))) for lang in by_language
             for spk in lang[rank : rank + 1]]  # round-robin over languages
    assignment = {spk: "test" for spk in order[:n_test]}
    assignment.update({spk: "val" for spk in order[n_test : n_test + n_val]})
    assignment.update({spk: "train" for spk in order[n_test + n_val :]})
    return assignment


def split_noises(noise: pd.DataFrame, per_category: dict[str, int], rng: np.random.Generator) -> dict[str, str]:
    """noise clip → split, per category, so each split has every category but never shares a clip."""
    assignment: dict[str, str] = {}
    n_val, n_test = int(per_category.get("val", 1)), int(per_category.get("test", 1))
    for category, group in noise.sort_values("path").groupby("category"):
        if len(group) < n_val + n_test + 1:
            raise ValueError(f"noise category {category!r} has {len(group)} clips; needs at least {n_val + n_test + 1}")
        paths = list(rng.permutation(group.path.to_numpy()))
        for i, path in enumerate(paths):
            assignment[path] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return assignment


def plan_mixtures(speech: pd.DataFrame, noise: pd.DataFrame, params: dict[str, Any], rng) -> pd.DataFrame:
    """One row per mixture to make: which utterance, which noise clip, target SNR and level."""
    low, high = params["snr_db"]["low"], params["snr_db"]["high"]
    level_low, level_high = params["level_dbfs"]["low"], params["level_dbfs"]["high"]
    rows = []
    for split in SPLITS:
        utterances = speech[speech.split == split]
        clips = noise[noise.split == split]
        categories = sorted(clips.category.unique())
        if split == "test":
            # Every utterance at every fixed level. Category index = utterance + level index, so each level
            # meets every category equally often and SNR is not confounded with the kind of noise.
            targets = [(u, float(s), ui + li) for ui, u in enumerate(utterances.itertuples())
                       for li, s in enumerate(params["test_snr_db"])]
        else:
            targets = [(u, float(rng.uniform(low, high)), None) for u in utterances.itertuples()
                       for _ in range(int(params["mixtures_per_utterance"]))]
        for n, (utt, snr, slot) in enumerate(targets):
            category = categories[slot % len(categories)] if slot is not None else rng.choice(categories)
            clip = rng.choice(clips[clips.category == category].path.to_numpy())
            rows.append({"id": f"{split}{n:05d}", "split": split, "speech_path": utt.path, "speaker": utt.speaker,
                         "language": utt.language, "noise_path": clip, "noise_category": category,
                         "target_snr_db": snr, "level_target_dbfs": float(rng.uniform(level_low, level_high)),
                         "seed": int(rng.integers(0, 2**31 - 1))})
    return pd.DataFrame(rows)


def split_recorded(clean: pd.DataFrame, settings: dict[str, Any], rng: np.random.Generator) -> dict[str, str]:
    """speaker → split for recorded pairs (their clean rows). A corpus's own test split is kept, since the field
    reports on it (VoiceBank+DEMAND: 824 pairs of 2 unseen speakers); `val_speakers` of its training speakers
    validate (unless it names its own). Pairs without a publisher split are split by speaker like speech
    (`val_speakers`, `test_speakers`)."""
    n_val, n_test = int(settings.get("val_speakers", 1)), int(settings.get("test_speakers", 1))
    published = clean.groupby("speaker").split.agg(lambda s: "test" if (s == "test").any() else
                                                   "val" if (s == "val").any() else "train" if s.any() else "")
    assignment = {spk: split for spk, split in published.items() if split in ("test", "val")}
    split_of = clean.speaker.map(published)
    training, unsplit = clean[split_of == "train"], clean[split_of == ""]
    try:
        if len(training):
            assignment.update(split_speakers(training, 0 if "val" in assignment.values() else n_val, 0, rng))
        if len(unsplit):
            assignment.update(split_speakers(unsplit, n_val, n_test, rng))
    except ValueError as err:
        raise ValueError(f"recorded pairs (mix.recorded): {err}") from None
    return assignment


def copy_recorded(manifest: pd.DataFrame, params: dict[str, Any], corpus: Path, out: Path,
                  rate: int) -> list[dict[str, Any]]:
    """Every recorded pair into its split as it is (no trimming, gain or mixing): the mixture manifest's rows."""
    clean = manifest[manifest.kind == "clean"].fillna({"category": ""}).sort_values("pair_id")
    if clean.empty:
        return []
    noisy = manifest[manifest.kind == "noisy"].set_index("pair_id")
    # its own generator: adding or removing a paired corpus never reshuffles the mixtures
    split = clean.speaker.map(split_recorded(clean, params.get("recorded") or {},
                                             np.random.default_rng([int(params["seed"]), 1])))
    rows, counters = [], dict.fromkeys(SPLITS, 0)
    for row, part in track(zip(clean.itertuples(), split), total=len(clean), description="copy pairs",
                           transient=True):
        file_id = f"{part}r{counters[part]:05d}"
        counters[part] += 1
        clean_audio, _ = read_audio(corpus / row.path)
        noisy_audio, _ = read_audio(corpus / noisy.at[row.pair_id, "path"])
        clean_path, noisy_path = f"{part}/clean/{file_id}.wav", f"{part}/noisy/{file_id}.wav"
        write_audio(out / clean_path, clean_audio, rate)
        write_audio(out / noisy_path, noisy_audio, rate)
        snr = snr_db(clean_audio, noisy_audio - clean_audio, rate)
        rows.append({"id": file_id, "split": part, "clean_path": clean_path, "noisy_path": noisy_path,
                     "speaker": row.speaker, "language": row.language, "noise_path": "",
                     "noise_category": row.category or row.path.split("/")[0], "target_snr_db": snr_level(snr),
                     "realized_snr_db": snr, "level_dbfs": rms_db(noisy_audio), "duration": len(clean_audio) / rate,
                     "sample_rate": rate, "origin": "recorded", "pair_id": row.pair_id})
    return rows


def run(params: dict[str, Any], *, corpus: Path, out: Path) -> None:
    corpus, out = Path(corpus), Path(out)
    manifest = read_table(corpus / "manifest.csv")
    rate = int(manifest.sample_rate.iat[0])
    check_audio_files(corpus, list(manifest.path), name="mix input: corpus files",
                      report_path=out / "checks" / "input_files.json", sample_rate=rate,
                      min_seconds=0.25, max_seconds=None)
    speech = manifest[manifest.kind == "speech"].copy()
    noise = manifest[manifest.kind == "noise"].copy()
    if speech.empty != noise.empty:  # one without the other: nothing to mix, and the one given would go unused
        have, lacking = ("speech", "noise") if noise.empty else ("noise", "speech")
        raise ValueError(f"{corpus / 'manifest.csv'}: {have} but no {lacking} to mix it with; add a {lacking} source "
                         "to download.sources (recorded pairs need neither)")
    rows = _mix(speech, noise, params, corpus, out, rate) if len(speech) else []
    rows += copy_recorded(manifest, params, corpus, out, rate)
    if not rows:
        raise ValueError(f"{corpus / 'manifest.csv'}: no speech, noise or recorded pairs to make mixtures from")
    mixtures = pd.DataFrame(rows)
    validate(suites.mixture_manifest_frame(mixtures), suites.mixture_manifest(params["snr_tolerance_db"]),
             name="mix output: mixture manifest", report_path=out / "checks" / "manifest.json",
             id_column="noisy_path")
    check_mixture_files(out, mixtures, name="mix output: mixture files", report_path=out / "checks" / "files.json")
    write_table(out / "manifest.csv", mixtures)
    counts = mixtures.split.value_counts().to_dict()
    recorded = int((mixtures.origin == "recorded").sum())
    print(f"mix: {counts.get('train', 0)} train, {counts.get('val', 0)} val, {counts.get('test', 0)} test mixtures"
          + (f" ({recorded} of them recorded pairs)" if recorded else ""))


def _mix(speech: pd.DataFrame, noise: pd.DataFrame, params: dict[str, Any], corpus: Path, out: Path,
         rate: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(params["seed"])
    speech["split"] = speech.speaker.map(split_speakers(speech, params["val_speakers"], params["test_speakers"], rng))
    noise["split"] = noise.path.map(split_noises(noise, params["noise_instances"], rng))
    plan = plan_mixtures(speech, noise, params, rng)

    @lru_cache(maxsize=None)
    def load(path: str, trim: bool) -> np.ndarray:
        audio, _ = read_audio(corpus / path)
        return trim_silence(audio, rate, params["trim_top_db"]) if trim else audio

    rows = []
    for job in track(plan.itertuples(), total=len(plan), description="mix", transient=True):
        job_rng = np.random.default_rng(job.seed)
        clean = load(job.speech_path, True)
        noise_clip = noise_segment(load(job.noise_path, False), len(clean), job_rng)
        mixture = mix_at_snr(clean, noise_clip, job.target_snr_db, job.level_target_dbfs, rate)
        clean_path, noisy_path = f"{job.split}/clean/{job.id}.wav", f"{job.split}/noisy/{job.id}.wav"
        write_audio(out / clean_path, mixture.clean, rate)
        write_audio(out / noisy_path, mixture.noisy, rate)
        rows.append({"id": job.id, "split": job.split, "clean_path": clean_path, "noisy_path": noisy_path,
                     "speaker": job.speaker, "language": job.language, "noise_path": job.noise_path,
                     "noise_category": job.noise_category, "target_snr_db": job.target_snr_db,
                     "realized_snr_db": mixture.realized_snr_db, "level_dbfs": mixture.level_dbfs,
                     "duration": len(clean) / rate, "sample_rate": rate, "origin": "mixed", "pair_id": ""})
    return rows


def main(argv: list[str] | None = None) -> None:
    stage_main("mix", run, argv)


if __name__ == "__main__":
    main()
