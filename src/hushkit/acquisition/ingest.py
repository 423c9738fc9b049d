"""Ingest local audio folders (or any list of files): every file is either accepted (mono, resampled once, cached)
or quarantined with a reason; nothing is skipped silently and source files are only ever opened for reading.

    out/<prefix><kind>/<relative path>.flac      accepted audio at the pipeline rate
    out/<prefix><kind>.manifest.csv              the accepted rows; the next run's cache

Decisions (see also the reason codes in REASONS):
- Metadata beside the audio (README*, LICENSE*, *.txt, *.csv, *.tsv, *.json, *.md, *.yaml, .DS_Store, ._*, ...)
  is quarantined as `not_audio`, apart from `unsupported` (other extensions, which may be audio we cannot take), so the
  report shows it but it does not hide a real problem. Other hidden files and anything in hidden folders: `unsupported`.
- A WAV/AIFF truncated mid-data (header declares more data than the file holds) is accepted with the frames present:
  PCM has no framing, so every sample there is intact; the manifest's `note` says so and `summary_line` counts it.
  A compressed stream cut mid-data (FLAC/Ogg that loses sync) raises in libsndfile and is `unreadable`.
- Duplicates are judged on the source bytes (sha256), before decoding; the first accepted file (sorted order) wins.
- Level is judged twice: on the source, and on the resampled output (resampling to a lower rate drops the energy
  above the new band, so a file of high-pitched hiss can become near-silent); accepted files are never silent.
- Only regular files are ever opened (hushkit.acquisition.scan lists a folder): a dangling or looping symbolic link is
  `unreadable`, a named pipe, socket, device or a folder named like an audio file is `not_a_file`, a file whose bytes
  differ from the listing it was given (it changed in between) is `changed`.

`ingest_folder` lists a folder (or takes its listing) and labels files from their names; `ingest_files` takes files already listed and
labelled (e.g. a catalogue corpus parsed from its metadata) and applies the same rules, cache and report.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import soundfile as sf

from hushkit.audio import EPS, resample, write_audio
from hushkit.acquisition.scan import Entry, list_folder
from hushkit.config.data import UNCATEGORIZED
from hushkit.io import NotARegularFileError, read_table, sha256_file, write_table

REASONS = ("unreadable", "not_a_file", "changed", "empty", "non_finite", "too_short", "too_long", "silent", "clipped",
           "duplicate", "unsupported", "not_audio",
           # recorded pairs (hushkit.acquisition.sources.keep_whole_pairs): a side without its partner, or two sides of
           # different lengths
           "unpaired", "mismatched_pair")
QUARANTINE_COLUMNS = ["source", "reason", "detail"]
MANIFEST_COLUMNS = [
    # the corpus manifest columns later stages read (hushkit.checks.suites.CORPUS_COLUMNS) ...
    "path", "kind", "speaker", "category", "language", "text", "voice", "duration", "sample_rate", "sha256",
    "source", "license",
    # ... and what ingestion measured; the cache re-applies the rules to these without decoding again
    "source_sha256", "source_rate", "source_channels", "source_subtype", "source_duration", "source_rms_dbfs",
    "source_clip_fraction", "rms_dbfs", "note",
]
# FLAC 24-bit rather than float WAV: accepted audio is finite by construction (non_finite is rejected), so float's
# "a NaN stays visible" buys nothing here; 24-bit is ~-144 dBFS, below any recording's noise floor; and FLAC is
# ~2x smaller, which matters for real corpora. libsndfile clips the rare resampler overshoot above full scale.
OUTPUT_SUFFIX, OUTPUT_SUBTYPE = ".flac", "PCM_24"
CLIP_LEVEL = 0.999
BLOCK_FRAMES = 1 << 16
METADATA_SUFFIXES = {".txt", ".csv", ".tsv", ".json", ".md", ".yaml", ".yml"}
METADATA_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
METADATA_PREFIXES = ("readme", "license", "licence", "copying", "._")  # ._x: macOS AppleDouble resource forks
_LIBRISPEECH = re.compile(r"^(\d+)-\d+-\d+$")
_TRUNCATED = re.compile(r"^(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


@dataclass(frozen=True)
class IngestRules:
    min_seconds: float = 0.5
    max_seconds: float | None = None  # None: no limit (long files are read in blocks)
    silence_dbfs: float = -60.0  # RMS below this: silent
    clip_fraction: float = 0.01  # more than this fraction of samples at |x| >= 0.999: clipped
    extensions: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest: `path` is read (never written); `rel` names its output under out/<prefix><kind>/ (the
    suffix becomes .flac); `labels` fill manifest columns (speaker, category, language); `name` is how the manifest's
    `source` column and the quarantine report call the file (default: `path`); `sha256`, when given, is the content
    the file was listed with (other bytes now: quarantined as `changed`)."""
    path: Path
    rel: Path
    labels: dict[str, str]
    name: str = ""
    sha256: str = ""


@dataclass
class IngestResult:
    accepted: pd.DataFrame  # manifest rows (MANIFEST_COLUMNS), sorted by path
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS, sorted by source


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class _Decoded:
    mono: np.ndarray  # float32, source rate
    rate: int
    channels: int
    subtype: str
    duration: float
    rms_dbfs: float
    clip_fraction: float
    note: str


def ingest_folder(source: Path, kind: str, out: Path, sample_rate: int, rules: IngestRules = IngestRules(),
                  *, prefix: str = "", language: str = "und", progress: bool = True,
                  entries: Sequence[Entry] | None = None) -> IngestResult:
    """Accept each good audio file of `source` into out/<prefix><kind>/ (sorted), quarantine the rest. `entries`:
    the folder's listing (hushkit.acquisition.scan) when the caller has one; else the folder is listed now."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise NotADirectoryError(f"ingest source {source} is not a folder")
    _check_disjoint(source, out, out / f"{prefix}{kind}")
    if entries is None:
        entries = list_folder(source, audio_suffixes=rules.extensions)
    files = [SourceFile(source / e.path, Path(e.path), _labels(Path(e.path), kind, language), sha256=e.sha256)
             for e in entries if e.regular]
    result = ingest_files(files, kind, out, sample_rate, rules, prefix=prefix, progress=progress)
    rejected = pd.DataFrame([{"source": str(source / e.path), "reason": e.reason, "detail": e.detail}
                             for e in entries if not e.regular], columns=QUARANTINE_COLUMNS)
    if len(rejected):
        quarantine = pd.concat([result.quarantine, rejected], ignore_index=True)
        result.quarantine = quarantine.sort_values("source", kind="stable").reset_index(drop=True)
    return result


def ingest_files(files: Sequence[SourceFile], kind: str, out: Path, sample_rate: int,
                 rules: IngestRules = IngestRules(), *, prefix: str = "", progress: bool = True) -> IngestResult:
    """Accept each good file of `files` (in the order given: the first of two duplicates wins) into
    out/<prefix><kind>/, quarantine the rest; out/<prefix><kind>.manifest.csv caches the accepted rows."""
    out = Path(out)
    kind_dir = f"{prefix}{kind}"
    cache_path = out / f"{kind_dir}.manifest.csv"
    cache = _load_cache(cache_path, sample_rate)
    rows: list[dict[str, Any]] = []
    quarantined: list[dict[str, str]] = []
    accepted_sha: dict[str, str] = {}
    taken: set[str] = set()

    bar = _progress(f"ingest {kind}", len(files)) if progress else None
    try:
        for file in files:
            name = file.name or str(file.path)
            try:
                sha = _screen(Path(file.rel), Path(file.path), rules)
                if file.sha256 and sha != file.sha256:
                    raise _Rejected("changed", f"its content changed after it was listed (sha256 {file.sha256[:12]} "
                                               f"listed, {sha[:12]} now); the next listing (`dvc repro`) takes it")
                if sha in accepted_sha:
                    raise _Rejected("duplicate", f"same content (sha256 {sha[:12]}) as accepted {accepted_sha[sha]}")
                out_rel = _output_name(kind_dir, Path(file.rel), taken)
                row = _cached_row(cache.get(out_rel), sha, out, rules)
                if row is None:
                    row = _convert(Path(file.path), out, out_rel, sample_rate, rules)
                row.update(path=out_rel, kind=kind, source=name, source_sha256=sha, **file.labels)
                rows.append(row)
                accepted_sha[sha] = name
                taken.add(out_rel)
            except _Rejected as rejected:
                quarantined.append({"source": name, "reason": rejected.reason, "detail": rejected.detail})
            if bar is not None:
                bar[0].advance(bar[1])
    finally:
        if bar is not None:
            bar[0].stop()

    accepted = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("path", kind="stable").reset_index(drop=True)
    quarantine = pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS)
    # outputs of files no longer accepted (source gone or now rejected) would disagree with the manifest
    for stale in set(cache) - set(accepted.path):
        if stale.startswith(f"{kind_dir}/") and ".." not in Path(stale).parts:  # only ever our own outputs
            (out / stale).unlink(missing_ok=True)
    write_table(cache_path, accepted)
    return IngestResult(accepted=accepted, quarantine=quarantine)


def write_quarantine_report(result: IngestResult, path: str | os.PathLike) -> None:
    write_table(path, result.quarantine[QUARANTINE_COLUMNS])


def summary_line(result: IngestResult) -> str:
    """E.g. "accepted 31 files (12.4 min); quarantined 9: unreadable 3, empty 2, silent 1"."""
    acc, qua = result.accepted, result.quarantine
    line = f"accepted {len(acc)} files ({acc.duration.astype(float).sum() / 60:.1f} min); quarantined {len(qua)}"
    counts = qua.reason.value_counts()
    if len(counts):
        line += ": " + ", ".join(f"{r} {counts[r]}" for r in REASONS if r in counts)
    truncated = int(acc.note.astype(str).str.startswith("truncated").sum())
    if truncated:
        line += f"; {truncated} accepted truncated (frames present kept)"
    return line


# -- walking and screening ------------------------------------------------------------------------------------------

def _screen(rel: Path, path: Path, rules: IngestRules) -> str:
    """Reject by name and size; return the source sha256 of a candidate."""
    name, suffix = rel.name.lower(), rel.suffix.lower()
    if name in METADATA_NAMES or name.startswith(METADATA_PREFIXES) or suffix in METADATA_SUFFIXES:
        raise _Rejected("not_audio", "metadata file beside the audio (not ingested)")
    hidden = [p for p in rel.parts if p.startswith(".")]
    if hidden:
        raise _Rejected("unsupported", f"hidden file or folder ({hidden[0]})")
    if suffix not in {e.lower() for e in rules.extensions}:
        raise _Rejected("unsupported", f"extension {suffix or '(none)'!r} is not an accepted audio format "
                                       f"({' '.join(rules.extensions)}); add it to IngestRules.extensions if it is")
    try:
        size = path.stat().st_size
        sha = sha256_file(path)  # refuses (never reads) a pipe or a device
    except NotARegularFileError as err:
        raise _Rejected("not_a_file", str(err)) from None
    except OSError as err:
        raise _Rejected("unreadable", f"cannot open the file: {err.strerror or err}") from None
    if size == 0:
        raise _Rejected("empty", "file is 0 bytes")
    return sha


def _output_name(kind_dir: str, rel: Path, taken: set[str]) -> str:
    """out-relative path; a clash (a.wav and a.flac side by side) keeps the source suffix: a.wav.flac."""
    candidates = [rel.with_suffix(OUTPUT_SUFFIX), rel.with_name(rel.name + OUTPUT_SUFFIX)]
    candidates += [rel.with_name(f"{rel.name}.{i}{OUTPUT_SUFFIX}") for i in range(2, len(taken) + 3)]
    for candidate in candidates:
        name = (Path(kind_dir) / candidate).as_posix()
        if name not in taken:
            return name
    raise AssertionError("unreachable: more candidates than taken names")


def _labels(rel: Path, kind: str, language: str) -> dict[str, str]:
    if kind == "speech":
        match = _LIBRISPEECH.match(rel.stem)
        speaker = match.group(1) if match else (rel.parent.name if rel.parent != Path(".") else rel.stem)
        return {"speaker": speaker, "category": "", "language": language}
    category = rel.parts[0] if len(rel.parts) > 1 else UNCATEGORIZED
    return {"speaker": "", "category": category, "language": ""}


# -- decoding, judging, writing -------------------------------------------------------------------------------------

def _decode(path: Path, rules: IngestRules) -> _Decoded:
    """One pass in blocks: downmix to mono float32 and measure non-finite, clipped and RMS on the way."""
    blocks: list[np.ndarray] = []
    frames = nonfinite = clipped = 0
    sumsq = 0.0
    try:
        with sf.SoundFile(path) as fh:  # mode "r": the source is never opened for writing
            rate, channels, subtype, declared = fh.samplerate, fh.channels, fh.subtype, fh.frames
            # 8-bit PCM tops out at 127/128 < 0.999, so full scale there is one code below
            level = min(CLIP_LEVEL, 127 / 128) if subtype in ("PCM_U8", "PCM_S8") else CLIP_LEVEL
            for block in fh.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                frames += len(block)
                if rules.max_seconds is not None and frames / rate > rules.max_seconds:
                    raise _Rejected("too_long", f"longer than {frames / rate:.1f} s (maximum {rules.max_seconds:g} s;"
                                                f" header says {declared / rate:.1f} s)")
                nonfinite += int(block.size - np.count_nonzero(np.isfinite(block)))
                clipped += int(np.count_nonzero(np.abs(block) >= level))
                mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
                sumsq += float(np.square(mono, dtype=np.float64).sum())
                blocks.append(mono)
            info = fh.extra_info
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise _Rejected("unreadable", f"libsndfile cannot decode it: {err}") from None
    if frames == 0:
        raise _Rejected("empty", "valid header but no audio frames")
    if nonfinite:
        raise _Rejected("non_finite", f"{nonfinite} of {frames * channels} samples are NaN or infinite")
    note = ""
    cut = _TRUNCATED.search(info)
    if cut or frames < declared:
        declares = f"{cut.group(2)} data bytes" if cut else f"{declared} frames"
        note = f"truncated: header declares {declares}; only {frames} frames ({frames / rate:.3f} s) present"
    return _Decoded(
        mono=blocks[0] if len(blocks) == 1 else np.concatenate(blocks), rate=int(rate), channels=int(channels),
        subtype=str(subtype), duration=round(frames / rate, 6),
        # rounded as the manifest stores them, so a cached row is judged exactly as the fresh one was
        rms_dbfs=round(10.0 * float(np.log10(sumsq / frames + EPS)), 6),
        clip_fraction=round(clipped / (frames * channels), 6), note=note,
    )


def _judge(duration: float, rms_dbfs: float, clip_fraction: float, rules: IngestRules) -> None:
    if duration < rules.min_seconds:
        raise _Rejected("too_short", f"{duration:.3f} s long (minimum {rules.min_seconds:g} s)")
    if rules.max_seconds is not None and duration > rules.max_seconds:
        raise _Rejected("too_long", f"{duration:.1f} s long (maximum {rules.max_seconds:g} s)")
    if rms_dbfs < rules.silence_dbfs:
        raise _Rejected("silent", f"RMS level {rms_dbfs:.1f} dBFS (silence below {rules.silence_dbfs:g} dBFS)")
    if clip_fraction > rules.clip_fraction:
        raise _Rejected("clipped", f"{100 * clip_fraction:.1f}% of samples at full scale "
                                   f"(limit {100 * rules.clip_fraction:.1f}%)")


def _judge_output(rms_dbfs: float, sample_rate: int, rules: IngestRules) -> None:
    if rms_dbfs < rules.silence_dbfs:
        raise _Rejected("silent", f"RMS level {rms_dbfs:.1f} dBFS after resampling to {sample_rate} Hz (silence below "
                                  f"{rules.silence_dbfs:g} dBFS): its energy lies above the new band")


def _level_dbfs(audio: np.ndarray) -> float:
    return round(10.0 * float(np.log10(np.mean(np.square(audio, dtype=np.float64)) + EPS)), 6)


def _convert(path: Path, out: Path, out_rel: str, sample_rate: int, rules: IngestRules) -> dict[str, Any]:
    decoded = _decode(path, rules)
    _judge(decoded.duration, decoded.rms_dbfs, decoded.clip_fraction, rules)
    audio = resample(decoded.mono, decoded.rate, sample_rate)  # the one resampling this audio ever gets
    del decoded.mono
    level = _level_dbfs(audio)
    _judge_output(level, sample_rate, rules)
    target = out / out_rel
    write_audio(target, audio, sample_rate, subtype=OUTPUT_SUBTYPE)
    return {
        "text": "", "voice": "", "license": "", "duration": audio.shape[0] / sample_rate, "sample_rate": sample_rate,
        "sha256": sha256_file(target), "source_rate": decoded.rate, "source_channels": decoded.channels,
        "source_subtype": decoded.subtype, "source_duration": decoded.duration,
        "source_rms_dbfs": decoded.rms_dbfs, "source_clip_fraction": decoded.clip_fraction, "rms_dbfs": level,
        "note": decoded.note,
    }


# -- cache ------------------------------------------------------------------------------------------------------------

def _load_cache(path: Path, sample_rate: int) -> dict[str, dict[str, Any]]:
    """Previous run's rows by output path; rows at another pipeline rate are useless."""
    if not path.is_file():
        return {}
    try:
        table = read_table(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return {}  # a damaged cache costs a recompute, never a wrong answer
    if not set(MANIFEST_COLUMNS) <= set(table.columns):
        return {}
    table = table[table.sample_rate == sample_rate]
    return {str(r["path"]): r for r in table.to_dict("records")}


def _cached_row(cached: dict[str, Any] | None, sha: str, out: Path, rules: IngestRules) -> dict[str, Any] | None:
    """The previous row if it was made from these very source bytes and its output is intact; rules re-applied."""
    if cached is None or cached["source_sha256"] != sha:
        return None
    target = out / str(cached["path"])
    if not target.is_file() or sha256_file(target) != cached["sha256"]:
        return None
    _judge(float(cached["source_duration"]), float(cached["source_rms_dbfs"]),
           float(cached["source_clip_fraction"]), rules)
    _judge_output(float(cached["rms_dbfs"]), int(cached["sample_rate"]), rules)
    row = {c: cached[c] for c in MANIFEST_COLUMNS}
    for col in ("text", "voice", "license", "note"):
        row[col] = "" if pd.isna(row[col]) else str(row[col])
    for col in ("sample_rate", "source_rate", "source_channels"):
        row[col] = int(row[col])
    return row


def _check_disjoint(source: Path, out: Path, kind_out: Path) -> None:
    src, dst, kdst = source.resolve(), out.resolve(), kind_out.resolve()
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(kdst):
        raise ValueError(f"ingest output {out} and source {source} overlap; the walk would ingest its own output")


def _progress(description: str, total: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True))
    bar.start()
    return bar, bar.add_task(description, total=total)
