"""The download stage's sources: `download.sources` parsed, and each source brought into the corpus folder.

    synthetic            out/speech/..., out/noise/...    the embedded synthetic corpus (hushkit.synthetic)
    local                out/local/{speech,noise}/...     the folders download.local.{speech,noise}, ingested
    <catalogue name>     out/<name>/{speech,noise}/...    downloaded (hushkit.acquisition.catalogue), then ingested
    <paired corpus>      out/<name>/{clean,noisy}/...     recorded pairs (voicebank_demand): both sides ingested,
                                                          kept only as a whole pair; the mix stage copies them

An entry `name:speech` or `name:noise` takes one kind only (e.g. `ms_snsd:noise`, `synthetic:noise`); a paired corpus
is taken whole.
Ingested audio is cached under <download.cache>/ingested/, outside the DVC output: DVC deletes an output before its
stage reruns, so a cache inside it would be empty every time. A rerun decodes and resamples only new or changed
files and copies the rest. Speakers of ingested sources are named `<source>:<speaker>`, so two sources that both
call someone "1" (or "alice") never merge two people into one speaker (or one person across two splits).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import soundfile as sf

from hushkit.acquisition.ingest import IngestResult, IngestRules, SourceFile, ingest_files, ingest_folder, summary_line
from hushkit.acquisition.scan import HashCache, from_listing, list_folder, to_listing
from hushkit.checks.suites import CORPUS_COLUMNS
from hushkit.config import DownloadParams
from hushkit.config.data import UNCATEGORIZED
from hushkit.io import atomic_path, read_table
from hushkit.workspace import resolve

SYNTHETIC, LOCAL = "synthetic", "local"
KINDS = ("speech", "noise")
PAIRED_KINDS = ("clean", "noisy")
QUARANTINE_COLUMNS = ["corpus", "kind", "source", "reason", "detail"]
LOCAL_LICENSE = "user-supplied"


@dataclass(frozen=True)
class SourceSpec:
    name: str  # synthetic, local or a catalogue name
    kinds: tuple[str, ...]  # the kinds taken from it
    restricted: bool = False  # the entry named its kind (`name:kind`): that kind must be there


@dataclass
class SourceOutput:
    spec: SourceSpec
    manifest: pd.DataFrame  # CORPUS_COLUMNS, paths relative to the corpus folder
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS
    lines: list[str]  # what the stage prints about this source


def parse_sources(params: DownloadParams) -> list[SourceSpec]:
    """`download.sources` checked before anything is built or downloaded; errors name the entry and the fix."""
    entries = [params.sources] if isinstance(params.sources, str) else params.sources
    from hushkit.acquisition.catalogue import CATALOGUE

    known = [SYNTHETIC, LOCAL, *sorted(CATALOGUE)]
    specs: list[SourceSpec] = []
    for entry in entries:
        name, _, kind = str(entry).partition(":")
        if name not in known:
            raise ValueError(f"params download.sources: unknown source {name!r}; available: {', '.join(known)}")
        if kind and kind not in KINDS:
            raise ValueError(f"params download.sources: {entry!r}: the kind after ':' must be speech or noise")
        paired = name in CATALOGUE and CATALOGUE[name].kind == "paired"
        if paired and kind:
            raise ValueError(f"params download.sources: {entry!r}: {name} is a paired corpus (recorded noisy/clean "
                             f"pairs), taken whole: list it as {name}")
        if any(spec.name == name for spec in specs):
            raise ValueError(f"params download.sources lists {name!r} twice")
        kinds = PAIRED_KINDS if paired else (kind,) if kind else KINDS
        specs.append(SourceSpec(name, kinds, restricted=bool(kind)))
    return specs


def ingest_rules(params: DownloadParams) -> IngestRules:
    ingest = params.ingest
    return IngestRules(min_seconds=ingest.min_seconds, max_seconds=ingest.max_seconds,
                       silence_dbfs=ingest.silence_dbfs, clip_fraction=ingest.clip_fraction)


# ------------------------------------------------------------------------------------------------------ synthetic


def run_synthetic(params: DownloadParams, spec: SourceSpec, out: Path) -> SourceOutput:
    from hushkit.synthetic.corpus import build_synthetic

    manifest = build_synthetic(dataclasses.asdict(params), out)
    for kind in set(KINDS) - set(spec.kinds):  # synthetic:speech or synthetic:noise: the other kind goes
        shutil.rmtree(out / kind, ignore_errors=True)
        manifest = manifest[manifest.kind != kind].reset_index(drop=True)
    speech, noise = manifest[manifest.kind == "speech"], manifest[manifest.kind == "noise"]
    line = (f"{speech.speaker.nunique()} speakers, {len(speech)} utterances ({speech.duration.sum() / 60:.1f} min); "
            f"{len(noise)} noise clips in {noise.category.nunique()} categories")
    return SourceOutput(spec, manifest, pd.DataFrame(columns=QUARANTINE_COLUMNS), [f"{SYNTHETIC}: {line}"])


# ---------------------------------------------------------------------------------------------- ingested sources


def local_folder(params: DownloadParams, kind: str) -> tuple[str, Path]:
    """download.local.<kind> as params name it, and the folder it means (which must exist)."""
    configured = getattr(params.local, kind)
    if configured in (None, ""):
        other = "noise" if kind == "speech" else "speech"
        raise ValueError(f"params download.local.{kind}: no folder given, but download.sources takes {kind} "
                         f"from local (name a folder, or list local:{other} to take only {other})")
    folder = resolve(configured)
    if not folder.is_dir():
        raise FileNotFoundError(f"params download.local.{kind}: folder {folder} does not exist")
    return str(configured), folder


def scan_local(params: DownloadParams) -> dict[str, Any]:
    """The listing of the `local` source's folders (hushkit.acquisition.scan), one per kind download.sources takes from
    it ({} when it takes none); content hashes are cached under <download.cache>/scan/."""
    spec = next((s for s in parse_sources(params) if s.name == LOCAL), None)
    if spec is None:
        return {}
    rules = ingest_rules(params)
    hashes = HashCache(resolve(params.cache) / "scan" / "hashes.csv")
    listing = {}
    for kind in spec.kinds:
        configured, folder = local_folder(params, kind)
        listing[kind] = to_listing(configured, list_folder(folder, audio_suffixes=rules.extensions, hashes=hashes))
    hashes.save()
    return listing


def run_local(params: DownloadParams, spec: SourceSpec, out: Path, rules: IngestRules, cache: Path,
              listing: Path | None = None) -> SourceOutput:
    """download.local.speech / .noise: speakers from sub-folders (or LibriSpeech names), categories from the first
    sub-folder (files directly in the noise folder: `uncategorized`). `listing`: the scan stage's listing of the
    folders (`scan_local`), which the pipeline depends on; without it the folders are listed now."""
    rate = params.sample_rate
    listed = json.loads(Path(listing).read_text()) if listing is not None else None
    results: dict[str, tuple[IngestResult, Path]] = {}
    for kind in spec.kinds:
        configured, folder = local_folder(params, kind)
        entries = None
        if listed is not None:
            if (listed.get(kind) or {}).get("folder") != configured:
                found = f"lists {listed[kind]['folder']}" if kind in listed else "has no folder"
                raise ValueError(f"{listing} {found} for {kind}, but params download.local.{kind} is {configured}: "
                                 "list the folders again (the scan stage; `dvc repro` runs it first)")
            entries = from_listing(listed[kind])
        store = _ingest_dir(cache, LOCAL, kind, folder, rate)
        results[kind] = ingest_folder(folder, kind, store, rate, rules, entries=entries,
                                      language=params.local.language or "und"), store
    return _collect(spec, results, out, LOCAL_LICENSE)


def run_catalogue(params: DownloadParams, spec: SourceSpec, out: Path, rules: IngestRules,
                  cache: Path) -> SourceOutput:
    """A catalogue corpus: downloaded into <cache>/downloads (verified, resumable, never twice), extracted into
    <cache>/extracted/<name>, then ingested file by file as parsed from its layout and metadata."""
    from hushkit.acquisition.catalogue import fetch_corpus, get_corpus

    corpus = get_corpus(spec.name)
    rate = params.sample_rate
    extracted = cache / "extracted" / spec.name
    try:
        table = fetch_corpus(corpus, cache / "downloads", extracted)
    except ValueError as err:
        if corpus.resources:
            raise
        raise ValueError(f"{err} ({spec.name} cannot be downloaded automatically: {corpus.note})") from None
    results: dict[str, tuple[IngestResult, Path]] = {}
    for kind in spec.kinds:
        rows = table[table.kind == kind]
        if rows.empty:
            if spec.restricted:
                raise ValueError(f"params download.sources: {spec.name} has no {kind} files "
                                 f"(it holds: {', '.join(sorted(set(table.kind)))})")
            continue
        files = [SourceFile(extracted / row.path, Path(row.path), _catalogue_labels(row, kind),
                            name=f"{spec.name}:{row.path}") for row in rows.itertuples()]
        store = _ingest_dir(cache, spec.name, kind, extracted, rate)
        results[kind] = ingest_files(files, kind, store, rate, rules), store
    pairs = table.assign(source=spec.name + ":" + table.path) if corpus.kind == "paired" else None
    return _collect(spec, results, out, corpus.license, pairs=pairs)


def _catalogue_labels(row: Any, kind: str) -> dict[str, str]:
    if kind == "noise":
        return {"speaker": "", "category": row.category or UNCATEGORIZED, "language": ""}
    # speech, or a side of a recorded pair: a file without a speaker label is its own speaker
    return {"speaker": row.speaker or Path(row.path).stem, "category": row.category or "",
            "language": row.language or "und"}


def _ingest_dir(cache: Path, name: str, kind: str, folder: Path, rate: int) -> Path:
    """One cache folder per source folder and rate: switching between folders or rates keeps each one's work."""
    key = hashlib.sha256(f"{folder.resolve()}|{rate}".encode()).hexdigest()[:12]
    return cache / "ingested" / f"{name}-{kind}-{key}"


def _collect(spec: SourceSpec, results: dict[str, tuple[IngestResult, Path]], out: Path, license: str,
             pairs: pd.DataFrame | None = None) -> SourceOutput:
    """Copy each accepted file from its ingest cache into out/<source>/; manifest and quarantine rows. `pairs` (a
    paired corpus's listing, with each file's `source` name) keeps only whole pairs: see `keep_whole_pairs`."""
    accepted: dict[str, pd.DataFrame] = {}
    for kind, (result, store) in results.items():
        # The rows as the ingest cache stores them (not as just computed): a run that decoded a file and one that
        # took it from the cache then give the very same manifest, also in memory, where the checks fingerprint it.
        rows = read_table(store / f"{kind}.manifest.csv")
        text = [c for c in rows.columns if rows[c].dtype == object or rows[c].isna().all()]
        rows[text] = rows[text].fillna("").astype(str)
        accepted[kind] = rows.assign(split="", pair_id="")
    quarantines = [result.quarantine.assign(corpus=spec.name, kind=kind)[QUARANTINE_COLUMNS]
                   for kind, (result, _) in results.items()]
    lines = [f"{spec.name} {kind}: {summary_line(result)}" for kind, (result, _) in results.items()]
    if pairs is not None:
        stores = {kind: store for kind, (_, store) in results.items()}
        rejected = pd.concat(quarantines, ignore_index=True)
        accepted, unpaired = keep_whole_pairs(spec.name, pairs, accepted, stores, rejected)
        quarantines.append(unpaired)
        kept = len(accepted.get("clean", ()))
        lines.append(f"{spec.name}: {kept} recorded pairs kept; {len(unpaired)} files quarantined without a whole pair"
                     + (f" ({', '.join(f'{r} {n}' for r, n in unpaired.reason.value_counts().sort_index().items())})"
                        if len(unpaired) else ""))
    manifests = []
    for kind, rows in accepted.items():
        store = results[kind][1]
        for rel in rows.path:
            with atomic_path(out / spec.name / rel) as tmp:
                shutil.copyfile(store / rel, tmp)
        rows = rows.assign(path=spec.name + "/" + rows.path.astype(str), license=license)
        if kind != "noise":  # people: named per source, so two corpora's "p232" stay two speakers
            rows["speaker"] = spec.name + ":" + rows.speaker.astype(str)
        manifests.append(rows[CORPUS_COLUMNS])
    manifest = pd.concat(manifests, ignore_index=True) if manifests else pd.DataFrame(columns=CORPUS_COLUMNS)
    quarantine = pd.concat(quarantines, ignore_index=True) if quarantines else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    return SourceOutput(spec, manifest, quarantine, lines)


def keep_whole_pairs(name: str, listing: pd.DataFrame, accepted: dict[str, pd.DataFrame], stores: dict[str, Path],
                     rejected: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """A recorded pair is kept only when both its sides were accepted and hold the same number of samples (they are
    one recording, sample-aligned). An accepted side whose partner was quarantined or is missing from the corpus is
    quarantined as `unpaired`, naming the partner and its reason; both sides of a length mismatch as
    `mismatched_pair`. Kept rows get the publisher's `split` and a corpus-wide `pair_id` (<name>:<pair>)."""
    listing = listing.fillna("")
    info = listing.set_index("source")
    partner = {(row.pair_id, row.kind): row.source for row in listing.itertuples()}
    why_rejected = dict(zip(rejected.source, rejected.reason))
    frames = {kind: accepted.get(kind, pd.DataFrame(columns=["path", "source"])) for kind in PAIRED_KINDS}
    by_pair = {kind: dict(zip(info.loc[frame.source, "pair_id"], frame.itertuples())) for kind, frame in frames.items()}
    keep: dict[str, list[str]] = {kind: [] for kind in PAIRED_KINDS}
    problems = []
    for kind, other in (PAIRED_KINDS, PAIRED_KINDS[::-1]):
        for pair_id, row in by_pair[kind].items():
            if pair_id in by_pair[other]:
                continue
            source = partner.get((pair_id, other))
            detail = (f"its {other} partner {source} was quarantined ({why_rejected.get(source, 'rejected')})"
                      if source else f"no {other} partner for {pair_id!r} in the corpus")
            problems.append({"corpus": name, "kind": kind, "source": row.source, "reason": "unpaired",
                             "detail": detail})
    for pair_id in sorted(set(by_pair["clean"]) & set(by_pair["noisy"])):
        sides = {kind: by_pair[kind][pair_id] for kind in PAIRED_KINDS}
        frames_of = {kind: sf.info(str(stores[kind] / row.path)).frames for kind, row in sides.items()}
        if frames_of["clean"] != frames_of["noisy"]:
            for kind, row in sides.items():
                problems.append({"corpus": name, "kind": kind, "source": row.source, "reason": "mismatched_pair",
                                 "detail": f"clean has {frames_of['clean']} samples, noisy {frames_of['noisy']} "
                                           "(after resampling): not one recording"})
            continue
        for kind, row in sides.items():
            keep[kind].append(row.source)
    kept = {}
    for kind, frame in frames.items():
        rows = frame[frame.source.isin(keep[kind])].copy()
        rows["split"] = info.loc[rows.source, "split"].astype(str).to_numpy()
        rows["pair_id"] = (name + ":" + info.loc[rows.source, "pair_id"].astype(str)).to_numpy()
        kept[kind] = rows.reset_index(drop=True)
    return kept, pd.DataFrame(problems, columns=QUARANTINE_COLUMNS)
