"""mix: speaker- and noise-disjoint splits; each mixture = trimmed clean speech + noise at a drawn SNR."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import track

from hushkit.audio import read_audio, trim_silence
from hushkit.checks import suites, validate
from hushkit.io import read_table, write_audio, write_table
from hushkit.mixing import mix_at_snr, noise_segment
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


def run(params: dict[str, Any], *, corpus: Path, out: Path) -> None:
    corpus, out = Path(corpus), Path(out)
    manifest = read_table(corpus / "manifest.csv")
    rate = int(manifest.sample_rate.iat[0])
    check_audio_files(corpus, list(manifest.path), name="mix input: corpus files",
                      report_path=out / "checks" / "input_files.json", sample_rate=rate,
                      min_seconds=0.25, max_seconds=None)
    rng = np.random.default_rng(params["seed"])
    speech = manifest[manifest.kind == "speech"].copy()
    noise = manifest[manifest.kind == "noise"].copy()
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
                     "duration": len(clean) / rate, "sample_rate": rate})
    mixtures = pd.DataFrame(rows)
    validate(suites.mixture_manifest_frame(mixtures), suites.mixture_manifest(params["snr_tolerance_db"]),
             name="mix output: mixture manifest", report_path=out / "checks" / "manifest.json",
             id_column="noisy_path")
    check_mixture_files(out, mixtures, name="mix output: mixture files", report_path=out / "checks" / "files.json")
    write_table(out / "manifest.csv", mixtures)
    counts = mixtures.split.value_counts().to_dict()
    print(f"mix: {counts.get('train', 0)} train, {counts.get('val', 0)} val, {counts.get('test', 0)} test mixtures")


def main(argv: list[str] | None = None) -> None:
    stage_main("mix", run, argv)


if __name__ == "__main__":
    main()
