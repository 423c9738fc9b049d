"""mix: speaker- and noise-disjoint splits; each mixture = trimmed clean speech + noise at a drawn SNR.

The test split has a `condition` per file: `matched` (every test utterance at every `test_snr_db` level, in the
noise categories trained on), and, as `mix.conditions` asks, `unseen_noise` (test utterances in noise categories
held out of training and validation altogether) and `reverberant` (test utterances convolved with a test-split
room impulse response of the rirs stage; the reference is their early-reflection or dry speech). `pools.csv` lists
every corpus file with its split, for the features stage's dynamic-mixing pools.

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

from hushkit import reverb
from hushkit.audio import read_audio, rms_db, trim_silence, write_audio
from hushkit.checks import suites, validate
from hushkit.checks.files import check_audio_files, check_mixture_files
from hushkit.config import MixParams
from hushkit.config.data import UNSEEN, HeldOut, RecordedSplits, Reverberant
from hushkit.io import read_table, write_table
from hushkit.mixing import mix_at_snr, noise_segment, snr_db, snr_level
from hushkit.progress import progress
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


def split_noises(noise: pd.DataFrame, per_category: HeldOut, rng: np.random.Generator) -> dict[str, str]:
    """noise clip → split, per category, so each split has every category but never shares a clip."""
    assignment: dict[str, str] = {}
    n_val, n_test = per_category.val, per_category.test
    for category, group in noise.sort_values("path").groupby("category"):
        if len(group) < n_val + n_test + 1:
            raise ValueError(f"noise category {category!r} has {len(group)} clips; needs at least {n_val + n_test + 1}")
        paths = list(rng.permutation(group.path.to_numpy()))
        for i, path in enumerate(paths):
            assignment[path] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return assignment


def plan_mixtures(speech: pd.DataFrame, noise: pd.DataFrame, params: MixParams, rng) -> pd.DataFrame:
    """One row per mixture to make: which utterance, which noise clip, target SNR and level."""
    low, high = params.snr_db.low, params.snr_db.high
    level_low, level_high = params.level_dbfs.low, params.level_dbfs.high
    rows = []
    for split in SPLITS:
        utterances = speech[speech.split == split]
        clips = noise[noise.split == split]
        categories = sorted(clips.category.unique())
        if split == "test":
            # Every utterance at every fixed level. Category index = utterance + level index, so each level
            # meets every category equally often and SNR is not confounded with the kind of noise.
            targets = [(u, float(s), ui + li) for ui, u in enumerate(utterances.itertuples())
                       for li, s in enumerate(params.test_snr_db)]
        else:
            targets = [(u, float(rng.uniform(low, high)), None) for u in utterances.itertuples()
                       for _ in range(params.mixtures_per_utterance)]
        for n, (utt, snr, slot) in enumerate(targets):
            category = categories[slot % len(categories)] if slot is not None else rng.choice(categories)
            clip = rng.choice(clips[clips.category == category].path.to_numpy())
            rows.append({"id": f"{split}{n:05d}", "split": split, "speech_path": utt.path, "speaker": utt.speaker,
                         "language": utt.language, "noise_path": clip, "noise_category": category,
                         "target_snr_db": snr, "level_target_dbfs": float(rng.uniform(level_low, level_high)),
                         "seed": int(rng.integers(0, 2**31 - 1)), "condition": "matched", "rir_id": ""})
    return pd.DataFrame(rows)


def held_out_categories(noise: pd.DataFrame, params: MixParams) -> list[str]:
    """The noise categories of the unseen-noise condition (`mix.conditions.unseen_noise.categories`): kept out of
    training, validation and the matched test altogether."""
    listed = params.conditions.unseen_noise.categories
    missing = sorted(set(listed) - set(noise.category))
    if missing:
        raise ValueError(f"mix.conditions.unseen_noise.categories: {missing} are not noise categories of the corpus "
                         f"(it has {sorted(noise.category.unique())})")
    if listed and set(listed) >= set(noise.category):
        raise ValueError(f"mix.conditions.unseen_noise.categories {listed} hold out every noise category: none is "
                         "left to train on")
    return listed


def spread_rows(frame: pd.DataFrame, count: int, what: str) -> pd.DataFrame:
    """`count` rows spread evenly over `frame` (every speaker keeps its share)."""
    if count > len(frame):
        raise ValueError(f"{what}: {count} asked for, but the test split has {len(frame)} utterances")
    return frame.iloc[np.linspace(0, len(frame) - 1, count).round().astype(int)] if count else frame.iloc[:0]


def plan_conditions(test_speech: pd.DataFrame, noise: pd.DataFrame, rir_ids: list[str], params: MixParams,
                    rng: np.random.Generator) -> pd.DataFrame:
    """The test conditions beside the matched one (mix.conditions): each condition mixes `utterances` test
    utterances once, at the `test_snr_db` levels in turn and each level across the condition's noise categories in
    turn, so level and category are not confounded. unseen_noise: clips of the held-out categories; reverberant:
    matched test-split clips, speech convolved with a test-split RIR."""
    levels = params.test_snr_db
    level_low, level_high = params.level_dbfs.low, params.level_dbfs.high
    utterances = test_speech.sort_values("path")
    rows = []
    for name, split in (("unseen_noise", UNSEEN), ("reverberant", "test")):
        settings = getattr(params.conditions, name)
        chosen = spread_rows(utterances, settings.utterances, f"mix.conditions.{name}.utterances")
        if chosen.empty:
            continue
        clips = noise[noise.split == split]
        if clips.empty:
            raise ValueError(f"mix.conditions.{name}.utterances is {len(chosen)} but there is no noise to mix it with"
                             + (" (list the held-out categories in mix.conditions.unseen_noise.categories)"
                                if split == UNSEEN else ""))
        if name == "reverberant" and not rir_ids:
            raise ValueError("mix.conditions.reverberant needs the rirs stage's test RIRs (--rirs data/rirs); "
                             "its bank has none in the test split")
        rirs = list(rng.permutation(rir_ids)) if name == "reverberant" else [""]
        categories = sorted(clips.category.unique())
        for k, utt in enumerate(chosen.itertuples()):
            category = categories[(k // len(levels)) % len(categories)]
            rows.append({"id": f"test-{name}-{k:04d}", "split": "test", "speech_path": utt.path,
                         "speaker": utt.speaker, "language": utt.language,
                         "noise_path": rng.choice(clips[clips.category == category].path.to_numpy()),
                         "noise_category": category, "target_snr_db": levels[k % len(levels)],
                         "level_target_dbfs": float(rng.uniform(level_low, level_high)),
                         "seed": int(rng.integers(0, 2**31 - 1)), "condition": name, "rir_id": rirs[k % len(rirs)]})
    return pd.DataFrame(rows)


def split_recorded(clean: pd.DataFrame, settings: RecordedSplits, rng: np.random.Generator) -> dict[str, str]:
    """speaker → split for recorded pairs (their clean rows). A corpus's own test split is kept, since the field
    reports on it (VoiceBank+DEMAND: 824 pairs of 2 unseen speakers); `val_speakers` of its training speakers
    validate (unless it names its own). Pairs without a publisher split are split by speaker like speech
    (`val_speakers`, `test_speakers`)."""
    n_val, n_test = settings.val_speakers, settings.test_speakers
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


def copy_recorded(manifest: pd.DataFrame, params: MixParams, corpus: Path, out: Path,
                  rate: int) -> list[dict[str, Any]]:
    """Every recorded pair into its split as it is (no trimming, gain or mixing): the mixture manifest's rows."""
    clean = manifest[manifest.kind == "clean"].fillna({"category": ""}).sort_values("pair_id")
    if clean.empty:
        return []
    noisy = manifest[manifest.kind == "noisy"].set_index("pair_id")
    # its own generator: adding or removing a paired corpus never reshuffles the mixtures
    split = clean.speaker.map(split_recorded(clean, params.recorded, np.random.default_rng([params.seed, 1])))
    rows, counters = [], dict.fromkeys(SPLITS, 0)
    for row, part in progress(zip(clean.itertuples(), split), len(clean), "copy pairs"):
        file_id = f"{part}r{counters[part]:05d}"
        counters[part] += 1
        clean_audio, _ = read_audio(corpus / row.path)
        noisy_audio, _ = read_audio(corpus / noisy.at[row.pair_id, "path"])
        clean_path, noisy_path = f"{part}/clean/{file_id}.wav", f"{part}/noisy/{file_id}.wav"
        write_audio(out / clean_path, clean_audio, rate)
        write_audio(out / noisy_path, noisy_audio, rate)
        snr = snr_db(clean_audio, noisy_audio - clean_audio, rate)
        rows.append({"id": file_id, "split": part, "clean_path": clean_path, "noisy_path": noisy_path,
                     "speaker": row.speaker, "language": row.language, "speech_path": row.path, "noise_path": "",
                     "noise_category": row.category or row.path.split("/")[0], "target_snr_db": snr_level(snr),
                     "realized_snr_db": snr, "level_dbfs": rms_db(noisy_audio), "duration": len(clean_audio) / rate,
                     "sample_rate": rate, "origin": "recorded", "pair_id": row.pair_id, "condition": "matched",
                     "rir_id": ""})
    return rows


def run(section: dict[str, Any], *, corpus: Path, out: Path, rirs: Path | None = None) -> None:
    """`section`: params.yaml's `mix`."""
    corpus, out = Path(corpus), Path(out)
    params = MixParams.parse(section, "mix")
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
    rows = _mix(speech, noise, params, corpus, out, rate, rirs) if len(speech) else []
    rows += copy_recorded(manifest, params, corpus, out, rate)
    if not rows:
        raise ValueError(f"{corpus / 'manifest.csv'}: no speech, noise or recorded pairs to make mixtures from")
    mixtures = pd.DataFrame(rows)
    validate(suites.mixture_manifest_frame(mixtures), suites.mixture_manifest(params.snr_tolerance_db),
             name="mix output: mixture manifest", report_path=out / "checks" / "manifest.json",
             id_column="noisy_path")
    check_mixture_files(out, mixtures, name="mix output: mixture files", report_path=out / "checks" / "files.json")
    write_table(out / "manifest.csv", mixtures)
    counts = mixtures.split.value_counts().to_dict()
    recorded = int((mixtures.origin == "recorded").sum())
    print(f"mix: {counts.get('train', 0)} train, {counts.get('val', 0)} val, {counts.get('test', 0)} test mixtures"
          + (f" ({recorded} of them recorded pairs)" if recorded else ""))


def _mix(speech: pd.DataFrame, noise: pd.DataFrame, params: MixParams, corpus: Path, out: Path,
         rate: int, rirs: Path | None) -> list[dict[str, Any]]:
    rng = np.random.default_rng(params.seed)
    speech["split"] = speech.speaker.map(split_speakers(speech, params.val_speakers, params.test_speakers, rng))
    held_out = noise.category.isin(held_out_categories(noise, params))
    noise["split"] = UNSEEN
    noise.loc[~held_out, "split"] = noise[~held_out].path.map(split_noises(noise[~held_out],
                                                                           params.noise_instances, rng))
    plan = plan_mixtures(speech, noise[~held_out], params, rng)
    bank = reverb.RirBank.load(rirs) if rirs is not None else None
    # the conditions draw from a stream of their own: adding one leaves every other mixture as it was
    conditions = plan_conditions(speech[speech.split == "test"], noise, bank.ids("test") if bank else [], params,
                                 np.random.default_rng([params.seed, 2]))
    plan = pd.concat([plan, conditions], ignore_index=True)
    write_table(out / "pools.csv", pd.concat([
        speech.assign(kind="speech", category="")[["kind", "path", "split", "speaker", "category"]],
        noise.assign(kind="noise", speaker="")[["kind", "path", "split", "speaker", "category"]],
    ]).sort_values(["kind", "path"]))
    reverb_settings = params.conditions.reverberant

    @lru_cache(maxsize=None)
    def load(path: str, trim: bool) -> np.ndarray:
        audio, _ = read_audio(corpus / path)
        return trim_silence(audio, rate, params.trim_top_db) if trim else audio

    rows = []
    for job in progress(plan.itertuples(), len(plan), "mix"):
        job_rng = np.random.default_rng(job.seed)
        clean = load(job.speech_path, True)
        reference = None
        if job.rir_id:
            rir = bank.rir(job.rir_id)
            reference = reverb_target(clean, rir, rate, reverb_settings)
            clean = reverb.convolve(clean, rir)
        noise_clip = noise_segment(load(job.noise_path, False), len(clean), job_rng)
        mixture = mix_at_snr(clean, noise_clip, job.target_snr_db, job.level_target_dbfs, rate, reference=reference)
        clean_path, noisy_path = f"{job.split}/clean/{job.id}.wav", f"{job.split}/noisy/{job.id}.wav"
        write_audio(out / clean_path, mixture.clean, rate)
        write_audio(out / noisy_path, mixture.noisy, rate)
        rows.append({"id": job.id, "split": job.split, "clean_path": clean_path, "noisy_path": noisy_path,
                     "speaker": job.speaker, "language": job.language, "speech_path": job.speech_path,
                     "noise_path": job.noise_path,
                     "noise_category": job.noise_category, "target_snr_db": job.target_snr_db,
                     "realized_snr_db": mixture.realized_snr_db, "level_dbfs": mixture.level_dbfs,
                     "duration": len(clean) / rate, "sample_rate": rate, "origin": "mixed", "pair_id": "",
                     "condition": job.condition, "rir_id": job.rir_id})
    return rows


def reverb_target(clean: np.ndarray, rir: np.ndarray, rate: int, settings: Reverberant) -> np.ndarray:
    """The reference a reverberant test file is scored against: the early-reflection speech (`target: early`, the
    first `early_ms` of the RIR) or the dry speech (`target: dry`)."""
    if settings.target == "dry":
        return clean
    return reverb.convolve(clean, reverb.early_part(rir, rate, settings.early_ms))


def main(argv: list[str] | None = None) -> None:
    stage_main("mix", run, argv)


if __name__ == "__main__":
    main()
