"""download: build (or fetch) the raw corpus of clean speech and noise, resampled once to the pipeline rate."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from hushkit.checks import suites, validate
from hushkit.io import write_table
from hushkit.stages._checks import check_audio_files
from hushkit.stages._cli import stage_main

SOURCES = ("synthetic",)


def run(params: dict[str, Any], *, out: Path) -> None:
    source = params.get("source", "synthetic")
    if source not in SOURCES:
        raise ValueError(f"params download.source: unknown source {source!r}; available: {', '.join(SOURCES)}")
    from hushkit.corpus.synthetic import build_synthetic

    out = Path(out)
    manifest = build_synthetic(params, out)
    rate = int(params["sample_rate"])
    speech = params["speech"]
    noise = params["noise"]
    checks = out / "checks"
    check_audio_files(out, list(manifest.path[manifest.kind == "speech"]), name="download output: speech files",
                      report_path=checks / "speech_files.json", sample_rate=rate,
                      min_seconds=speech["min_seconds"], max_seconds=speech["max_seconds"])
    check_audio_files(out, list(manifest.path[manifest.kind == "noise"]), name="download output: noise files",
                      report_path=checks / "noise_files.json", sample_rate=rate,
                      min_seconds=0.99 * noise["seconds"], max_seconds=1.01 * noise["seconds"])
    min_speakers = len(speech["languages"]) * speech["speakers_per_language"]
    validate(suites.corpus_manifest_frame(manifest),
             suites.corpus_manifest(min_speakers, len(noise["categories"]), rate),
             name="download output: corpus manifest", report_path=checks / "manifest.json")
    write_table(out / "manifest.csv", manifest)
    n_speech = int((manifest.kind == "speech").sum())
    Console(stderr=True).print(
        f"download: {n_speech} utterances from {manifest.speaker[manifest.kind == 'speech'].nunique()} speakers "
        f"({manifest.duration[manifest.kind == 'speech'].sum() / 60:.1f} min), "
        f"{len(manifest) - n_speech} noise clips in {manifest.category[manifest.kind == 'noise'].nunique()} categories"
    )


def main(argv: list[str] | None = None) -> None:
    stage_main("download", run, argv)


if __name__ == "__main__":
    main()
