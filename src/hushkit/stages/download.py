"""download: the raw corpus of clean speech and noise from the sources `download.sources` lists, resampled once to
the pipeline rate.

    out/manifest.csv     every accepted file: path, kind, speaker, category, ..., sha256, source, license
    out/quarantine.csv   every rejected file with its reason and detail (only a header when there is none)
    out/checks/          the data checks' full results

Sources (hushkit.acquisition.sources): `synthetic` (embedded, offline, deterministic), `local` (folders), and the public
corpora of hushkit.acquisition.catalogue (downloaded once into download.cache), paired ones (recorded noisy/clean pairs,
kinds `clean` and `noisy`) kept only as whole pairs. The `local` folders come as the scan stage listed them (the
pipeline depends on that listing, not on the folders: see hushkit.acquisition.scan). A bad file never stops or hangs the
stage: it is quarantined (a pipe, device or dangling link is never opened). The stage stops when what is accepted is
unusable (below download.minimum), saying which minimum and by how much.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from hushkit.checks import DataCheckError, suites, validate
from hushkit.config import DownloadParams
from hushkit.acquisition.ingest import REASONS, IngestRules
from hushkit.acquisition.sources import (
    LOCAL, QUARANTINE_COLUMNS, SYNTHETIC, SourceOutput, ingest_rules, parse_sources, run_catalogue,
    run_local, run_synthetic,
)
from hushkit.io import write_table
from hushkit.workspace import resolve
from hushkit.checks.files import check_audio_files
from hushkit.stages._cli import stage_main

def run(section: dict[str, Any], *, out: Path, listing: Path | None = None) -> None:
    """`section`: params.yaml's `download`. `listing`: the scan stage's listing of the `local` source's folders (the
    pipeline's dependency on them); without it they are listed here."""
    out = Path(out)
    # Every setting is checked before anything is built or downloaded.
    params = DownloadParams.parse(section, "download")
    specs = parse_sources(params)
    rules = ingest_rules(params)
    minimum = params.minimum.set()
    usable = suites.usable_corpus(minimum)
    cache = resolve(params.cache)
    rate = params.sample_rate

    outputs: list[SourceOutput] = []
    for spec in specs:
        if spec.name == SYNTHETIC:
            outputs.append(run_synthetic(params, spec, out))
        elif spec.name == LOCAL:
            outputs.append(run_local(params, spec, out, rules, cache, listing))
        else:
            outputs.append(run_catalogue(params, spec, out, rules, cache))

    manifest = _concat([o.manifest for o in outputs], suites.CORPUS_COLUMNS)
    manifest = manifest.sort_values("path", kind="stable").reset_index(drop=True)
    quarantine = _concat([o.quarantine for o in outputs], QUARANTINE_COLUMNS)
    write_table(out / "quarantine.csv", quarantine)  # first: it explains a failure below
    console = Console(stderr=True, soft_wrap=True)  # one line per message, however narrow the log
    for line in (line for o in outputs for line in o.lines):
        console.print(f"download: {line}")

    checks = out / "checks"
    _check_usable(manifest, quarantine, minimum, usable, report_path=checks / "usable.json",
                  quarantine_path=out / "quarantine.csv")
    for output in outputs:
        _check_files(output, params, rules, out, checks)
    min_speakers = min_categories = 0  # the synthetic corpus promises its counts; download.minimum covers the rest
    if any(o.spec.name == SYNTHETIC for o in outputs):
        synthetic = next(o.spec for o in outputs if o.spec.name == SYNTHETIC)
        if "speech" in synthetic.kinds:
            min_speakers = len(params.speech.languages) * params.speech.speakers_per_language
        if "noise" in synthetic.kinds:
            min_categories = len(params.noise.categories)
    validate(suites.corpus_manifest_frame(manifest), suites.corpus_manifest(min_speakers, min_categories, rate),
             name="download output: corpus manifest", report_path=checks / "manifest.json")
    write_table(out / "manifest.csv", manifest)
    speech = manifest[manifest.kind == "speech"]
    noise = manifest[manifest.kind == "noise"]
    pairs = manifest[manifest.kind == "clean"]
    recorded = (f", {len(pairs)} recorded noisy/clean pairs from {pairs.speaker.nunique()} speakers "
                f"({pairs.duration.sum() / 60:.1f} min)" if len(pairs) else "")
    console.print(
        f"download: {len(speech)} utterances from {speech.speaker.nunique()} speakers "
        f"({speech.duration.sum() / 60:.1f} min), "
        f"{len(noise)} noise clips in {noise.category.nunique()} categories{recorded}; "
        f"{len(quarantine)} files quarantined"
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The sources' rows under `columns`; a column a source does not have (split and pair_id outside paired
    corpora) is empty."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    manifest = pd.concat(frames, ignore_index=True).reindex(columns=columns)
    for column in {"split", "pair_id"} & set(columns):
        manifest[column] = manifest[column].astype(object).where(manifest[column].notna(), "")
    return manifest


def _check_usable(manifest: pd.DataFrame, quarantine: pd.DataFrame, minimum: dict[str, float], expectations: list,
                  *, report_path: Path, quarantine_path: Path) -> None:
    """The one check that judges the accepted set as a whole; its message says which minimum failed and why."""
    frame = suites.usable_corpus_frame(manifest)
    try:
        validate(frame, expectations, name="download output: usable corpus", report_path=report_path,
                 id_column="corpus")
    except DataCheckError as err:
        row = frame.iloc[0]
        short = [f"{key} {row[key]:g} < {value:g}" for key, value in minimum.items() if row[key] < value]
        counts = quarantine.reason.value_counts()
        reasons = ", ".join(f"{reason} {counts[reason]}" for reason in REASONS if reason in counts)
        message = (f"the accepted corpus is unusable, below download.minimum: {'; '.join(short)} "
                   f"({len(manifest)} files accepted, {len(quarantine)} quarantined"
                   f"{': ' + reasons if reasons else ''}; see {quarantine_path})\n{err}")
        raise DataCheckError(message, failures=err.failures, report_path=err.report_path) from None


def _check_files(output: SourceOutput, params: DownloadParams, rules: IngestRules, out: Path,
                 checks: Path) -> None:
    """Every accepted file read back for real: rate, mono, finite, peak, length and level as promised."""
    rate = params.sample_rate
    for kind in output.spec.kinds:
        paths = list(output.manifest.path[output.manifest.kind == kind])
        if not paths:
            continue  # an empty accepted set is the usable-corpus check's to judge
        if output.spec.name == SYNTHETIC:  # as generated: lengths exactly as configured
            bounds = ((params.speech.min_seconds, params.speech.max_seconds) if kind == "speech" else
                      (0.99 * params.noise.seconds, 1.01 * params.noise.seconds))
            check_audio_files(out, paths, name=f"download output: {kind} files",
                              report_path=checks / f"{kind}_files.json", sample_rate=rate,
                              min_seconds=bounds[0], max_seconds=bounds[1])
            continue
        # Ingestion judged the source and the resampled audio; a sample of resampling slack and a hair of
        # quantisation (24-bit) separate its bounds from these.
        check_audio_files(out, paths, name=f"download output: {output.spec.name} {kind} files",
                          report_path=checks / f"{output.spec.name}_{kind}_files.json", sample_rate=rate,
                          min_seconds=max(0.0, rules.min_seconds - 0.01),
                          max_seconds=None if rules.max_seconds is None else rules.max_seconds + 0.01,
                          min_rms_db=rules.silence_dbfs - 0.1)


def main(argv: list[str] | None = None) -> None:
    stage_main("download", run, argv)


if __name__ == "__main__":
    main()
