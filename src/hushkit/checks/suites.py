"""The expectation suites the stages check their data with, one function per kind of table.

Each function returns a list of GX expectations for `hushkit.checks.validate`. Tables that need counts across rows
(speakers per corpus, splits per speaker) get them from the matching `*_frame` helper, which adds derived columns.
"""
from __future__ import annotations

import pandas as pd

from hushkit.checks.gx import great_expectations
from hushkit.mixing import CONDITIONS

# kind: speech and noise to mix, or one side (clean | noisy) of a recorded pair; `pair_id` joins the two sides and
# `split` is the publisher's split of a paired corpus (empty for speech and noise: the mix stage splits those).
CORPUS_COLUMNS = ["path", "kind", "speaker", "category", "language", "text", "voice", "duration", "sample_rate",
                  "sha256", "source", "license", "split", "pair_id"]
CORPUS_KINDS = ["speech", "noise", "clean", "noisy"]
# origin: `mixed` by the mix stage, or `recorded` (a paired corpus's noisy/clean recording, copied as it is).
# condition: `matched` (noise categories trained on), or one of the test split's extra conditions (mix.conditions);
# rir_id: the RIR a reverberant test file's speech was convolved with (empty when dry).
MIXTURE_COLUMNS = ["id", "split", "clean_path", "noisy_path", "speaker", "language", "noise_path", "noise_category",
                   "target_snr_db", "realized_snr_db", "level_dbfs", "duration", "sample_rate", "origin", "pair_id",
                   "condition", "rir_id"]
ORIGINS = ["mixed", "recorded"]
SPLITS = ["train", "val", "test"]


def _e():
    return great_expectations().expectations


def audio_files(sample_rate: int, min_seconds: float, max_seconds: float | None = None,
                min_rms_db: float = -60.0, max_peak: float = 1.0) -> list:
    """Rows of `stats.audio_file_stats` (id column `path`): every file is usable mono audio at the project rate."""
    E = _e()
    return [
        # First, so an unreadable file's reason (the `error` column) heads the message.
        E.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
        # A NaN/inf sample poisons every loss and metric downstream.
        E.ExpectColumnValuesToBeInSet(column="all_finite", value_set=[True]),
        # Models and features assume one rate and one channel; nothing resamples silently later.
        E.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=[sample_rate]),
        E.ExpectColumnValuesToBeInSet(column="channels", value_set=[1]),
        # Too short to crop a training segment from, or suspiciously long (a wrong file).
        E.ExpectColumnValuesToBeBetween(column="duration", min_value=min_seconds, max_value=max_seconds),
        # Clipping: a float file over full scale turns into distortion once written as PCM or played.
        E.ExpectColumnValuesToBeBetween(column="peak", max_value=max_peak),
        # Digital silence or near-silence teaches nothing and breaks SNR arithmetic (-200 dB stands for silence).
        E.ExpectColumnValuesToBeBetween(column="rms_db", min_value=min_rms_db),
    ]


def corpus_manifest_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Add `n_speakers` (distinct speakers of speech rows) and `n_categories` (distinct categories of noise rows)."""
    out = df.copy()
    out["n_speakers"] = _distinct(df, "speech", "speaker")
    out["n_categories"] = _distinct(df, "noise", "category")
    return out


def _distinct(df: pd.DataFrame, kind: str, column: str) -> int:
    if "kind" not in df.columns or column not in df.columns:
        return 0  # the required-columns expectation names what is missing
    values = df.loc[df["kind"] == kind, column].dropna().astype(str)
    return int(values[values.str.strip() != ""].nunique())


def corpus_manifest(min_speakers: int, min_categories: int, sample_rate: int) -> list:
    """The corpus manifest after `corpus_manifest_frame` (id column `path`)."""
    E = _e()
    return [
        # Later stages read these columns by name.
        E.ExpectTableColumnsToMatchSet(column_set=CORPUS_COLUMNS, exact_match=False),
        E.ExpectColumnValuesToBeInSet(column="kind", value_set=CORPUS_KINDS),
        # One row per file: a duplicate would be mixed twice and could cross splits.
        E.ExpectColumnValuesToBeUnique(column="path"),
        # The digest is what makes a download reproducible; it must be a full lowercase SHA-256.
        E.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
        E.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=[sample_rate]),
        E.ExpectColumnValuesToBeBetween(column="duration", min_value=0.0, strict_min=True),
        # Speaker-disjoint splits and noise variety need enough distinct speakers and categories.
        E.ExpectColumnMinToBeBetween(column="n_speakers", min_value=min_speakers),
        E.ExpectColumnMinToBeBetween(column="n_categories", min_value=min_categories),
    ]


USABLE_MEASURES = ("speakers", "speech_files", "speech_minutes", "noise_files", "noise_categories", "noise_minutes",
                   "pairs", "pair_minutes")


def usable_corpus_frame(manifest: pd.DataFrame, name: str = "accepted set") -> pd.DataFrame:
    """One row (id column `corpus`) measuring what a corpus manifest holds: USABLE_MEASURES."""
    speech, noise = manifest[manifest["kind"] == "speech"], manifest[manifest["kind"] == "noise"]
    clean = manifest[manifest["kind"] == "clean"]  # one row per recorded pair (its clean side)
    return pd.DataFrame([{
        "corpus": name,
        "speakers": _distinct(manifest, "speech", "speaker"),
        "speech_files": len(speech),
        "speech_minutes": round(float(speech["duration"].astype(float).sum()) / 60, 3),
        "noise_files": len(noise),
        "noise_categories": _distinct(manifest, "noise", "category"),
        "noise_minutes": round(float(noise["duration"].astype(float).sum()) / 60, 3),
        "pairs": len(clean),
        "pair_minutes": round(float(clean["duration"].astype(float).sum()) / 60, 3),
    }])


def usable_corpus(minimum: dict[str, float]) -> list:
    """`usable_corpus_frame`'s row against the minimums set (params download.minimum, hushkit.config.MinimumParams:
    the keys are USABLE_MEASURES). Below them the accepted set cannot make speaker- and noise-disjoint splits worth
    training on, however good each file is."""
    E = _e()
    return [E.ExpectColumnValuesToBeBetween(column=key, min_value=float(value)) for key, value in minimum.items()]


def mixture_manifest_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Add `snr_error_db` = |realized - target|, and `speaker_splits` / `noise_splits`: in how many distinct splits
    the row's speaker / noise file appears (1 when splits are disjoint; NaN when the key is missing)."""
    out = df.copy()
    if {"realized_snr_db", "target_snr_db"} <= set(df.columns):
        out["snr_error_db"] = (df["realized_snr_db"].astype(float) - df["target_snr_db"].astype(float)).abs()
    for key, derived in (("speaker", "speaker_splits"), ("noise_path", "noise_splits")):
        if {key, "split"} <= set(df.columns):
            out[derived] = df.groupby(key)["split"].transform("nunique").astype(float)
    if {"noise_category", "split"} <= set(df.columns):
        trained = set(df.loc[df["split"].isin(["train", "val"]), "noise_category"])
        out["category_trained"] = df["noise_category"].isin(trained)
    return out


_MIXED_ROWS = {"row_condition": 'origin=="mixed"', "condition_parser": "pandas"}  # rows the mix stage mixed


def mixture_manifest(snr_tolerance_db: float) -> list:
    """The mixture manifest after `mixture_manifest_frame` (id column `noisy_path`)."""
    E = _e()
    return [
        E.ExpectTableColumnsToMatchSet(column_set=MIXTURE_COLUMNS, exact_match=False),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS),
        E.ExpectColumnValuesToBeInSet(column="origin", value_set=ORIGINS),
        E.ExpectColumnValuesToBeUnique(column="id"),
        E.ExpectColumnValuesToBeUnique(column="noisy_path"),
        # The mixer must hit the SNR it was asked for, or the per-SNR evaluation means nothing. (A recorded pair
        # has no target: its SNR is measured, and grouped under the nearest 5-dB level.)
        E.ExpectColumnValuesToBeBetween(column="snr_error_db", max_value=snr_tolerance_db, **_MIXED_ROWS),
        # A speaker or noise recording seen in training and test inflates the test scores.
        E.ExpectColumnValuesToBeBetween(column="speaker_splits", min_value=1, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="noise_splits", min_value=1, max_value=1, **_MIXED_ROWS),
        E.ExpectColumnValuesToBeInSet(column="condition", value_set=list(CONDITIONS)),
        # The unseen-noise condition means what it says only if no training or validation file has its noise.
        E.ExpectColumnValuesToBeInSet(column="category_trained", value_set=[False],
                                      row_condition='condition=="unseen_noise"', condition_parser="pandas"),
    ]


def feature_arrays(dtype: str | None = "float32") -> list:
    """Rows of `stats.array_stats` (id column `name`): packed 1-D waveforms the training loader can use as is."""
    E = _e()
    exps = [
        # One NaN in a batch turns the loss and then every weight into NaN.
        E.ExpectColumnValuesToBeInSet(column="all_finite", value_set=[True]),
        # Waveforms are in [-1, 1]; more means a gain bug upstream.
        E.ExpectColumnValuesToBeBetween(column="peak", max_value=1.0),
        # The loader slices one flat array by offsets.
        E.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1]),
        E.ExpectColumnValuesToBeBetween(column="size", min_value=1),
    ]
    if dtype is not None:
        exps.append(E.ExpectColumnValuesToBeInSet(column="dtype", value_set=[dtype]))
    return exps


def rir_index(rt60_low: float, rt60_high: float, sample_rate: int) -> list:
    """The RIR bank's index (id column `id`): splits known, simulated RIRs' measured RT60 inside the range asked for,
    every RIR long enough to reverberate (a few ms at least)."""
    E = _e()
    return [
        E.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS),
        E.ExpectColumnValuesToBeUnique(column="id"),
        # The bank's promise: what `rirs.rt60` asks for is what the rooms measure (Schroeder integration).
        E.ExpectColumnValuesToBeBetween(column="rt60", min_value=rt60_low, max_value=rt60_high,
                                        row_condition='source=="simulated"', condition_parser="pandas"),
        E.ExpectColumnValuesToBeBetween(column="length", min_value=int(0.005 * sample_rate)),
    ]


def evaluation_scores() -> list:
    """Per-file scores of the evaluate stage (id column `path` = "<id>:<system>"): every metric measured and in
    its range, so a mean in metrics.json never hides a failed or absurd score."""
    E = _e()
    return [
        E.ExpectColumnValuesToBeBetween(column="pesq", min_value=1.0, max_value=4.65),
        E.ExpectColumnValuesToBeBetween(column="stoi", min_value=0.0, max_value=1.0),
        E.ExpectColumnValuesToBeBetween(column="estoi", min_value=-1.0, max_value=1.0),
        E.ExpectColumnValuesToBeBetween(column="si_sdr", min_value=-100.0, max_value=100.0),
    ]


# --- audio tagging (hushkit.tagging) --------------------------------------------------------------------------------
# The tag-features stage's clip table: a clip's plan (subset, `;`-joined labels, files and SNRs, level, seed) and the
# SNR its speech has to all its noise (empty for a curated clip).
TAGGING_CLIP_COLUMNS = ["id", "split", "subset", "labels", "speech_path", "noise_paths", "snr_db", "level_dbfs", "seed",
                        "realized_snr_db"]
TAGGING_SUBSETS = ["curated", "noisy"]


def tagging_clips_frame(clips: pd.DataFrame, labels: list[str], speech: str, separator: str) -> pd.DataFrame:
    """Add `unknown_labels` (labels outside the label set), `noise_labels` (noise categories among a clip's labels),
    `unlabelled_noises` (its noise files beyond its noise labels: unnamed noise, which has no label) and
    `well_formed` (a curated clip: one noise file and no speech; a noisy one: speech and some noise)."""
    out = clips.copy()
    if not {"labels", "subset", "noise_paths"} <= set(out.columns):
        return out  # the required-columns expectation names what is missing

    def entries(column: str) -> pd.Series:
        return out[column].fillna("").astype(str).str.split(separator).apply(lambda v: [x for x in v if x])

    names, noises = entries("labels"), entries("noise_paths").apply(len)
    out["unknown_labels"] = names.apply(lambda v: sum(x not in labels for x in v))
    out["noise_labels"] = names.apply(lambda v: sum(x != speech for x in v))
    out["unlabelled_noises"] = noises - out["noise_labels"]
    has_speech = names.apply(lambda v: speech in v)
    out["well_formed"] = (((out.subset == "curated") & ~has_speech & (noises == 1))
                          | ((out.subset == "noisy") & has_speech & (noises >= 1)))
    return out


def tagging_clips(max_noises: int, unlabelled: bool = False) -> list:
    """The clip table after `tagging_clips_frame` (id column `id`). `unlabelled`: the corpus has unnamed noise, of
    which a clip may hold one file that no label names (else every noise file has its label)."""
    E = _e()
    return [
        E.ExpectTableColumnsToMatchSet(column_set=TAGGING_CLIP_COLUMNS, exact_match=False),
        E.ExpectColumnValuesToBeUnique(column="id"),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS),
        E.ExpectColumnValuesToBeInSet(column="subset", value_set=TAGGING_SUBSETS),
        # A label the tagger has no output for could never be scored.
        E.ExpectColumnValuesToBeBetween(column="unknown_labels", max_value=0),
        E.ExpectColumnValuesToBeBetween(column="noise_labels", min_value=0 if unlabelled else 1,
                                        max_value=max_noises),
        E.ExpectColumnValuesToBeBetween(column="unlabelled_noises", min_value=0, max_value=int(unlabelled)),
        # What the subsets promise: curated = one category alone, noisy = speech in noise.
        E.ExpectColumnValuesToBeInSet(column="well_formed", value_set=[True]),
        E.ExpectColumnValuesToBeBetween(column="level_dbfs", min_value=-100.0, max_value=0.0),
    ]


def tagging_arrays() -> list:
    """Rows of `stats.array_stats` (id column `name`) of a split's waveforms (clips x samples, within [-1, 1]) and
    multi-hot targets (clips x labels, 0 or 1): finite, float32, one row per clip, and at least one clip."""
    E = _e()
    return [
        E.ExpectColumnValuesToBeInSet(column="all_finite", value_set=[True]),
        E.ExpectColumnValuesToBeBetween(column="peak", max_value=1.0),
        E.ExpectColumnValuesToBeInSet(column="ndim", value_set=[2]),
        E.ExpectColumnValuesToBeBetween(column="size", min_value=1),
        E.ExpectColumnValuesToBeInSet(column="dtype", value_set=["float32"]),
    ]


def tagging_scores(labels: list[str]) -> list:
    """A tagger's clip scores (id column `id`, one column per label): every score a probability."""
    E = _e()
    return [E.ExpectColumnValuesToBeBetween(column=label, min_value=0.0, max_value=1.0) for label in labels]
