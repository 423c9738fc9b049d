"""`hushkit tag`: what is in recordings (speech, which noise categories), per file or per segment, as a CSV table
(hushkit.tagging.inference); hushkit.cli registers it.

Exit codes (hushkit.cli_errors): 0 every input tagged, 2 an input could not be tagged (each named in one line; the
others are tagged and written) or the command could not act at all (a bad model, params file or output).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import typer

from hushkit.cli_errors import ERROR, one_line_errors

TAGGING = Path("data/tagging")
PARAMS = Path("params.yaml")
FLOAT_FORMAT = "%.4f"
NO_TAGGER = "none"  # `hushkit evaluate --tagger none`: no breakdown by predicted noise category


def best_tagger(architectures: list[str], root: Path = TAGGING) -> Path:
    """The checkpoint of the last `dvc repro`'s best tagger: the highest lwlrap in
    <root>/evaluate/<arch>/metrics.json among `architectures` whose <root>/train/<arch>/model.pt exists (the first
    listed on a tie). FileNotFoundError when there is none."""
    scores: dict[str, float] = {}
    for arch in architectures:
        metrics = root / "evaluate" / arch / "metrics.json"
        if not ((root / "train" / arch / "model.pt").is_file() and metrics.is_file()):
            continue
        try:
            lwlrap = json.loads(metrics.read_text())["lwlrap"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{metrics}: no lwlrap score in it ({type(err).__name__}: {err})") from None
        if isinstance(lwlrap, (int, float)) and math.isfinite(lwlrap):
            scores[arch] = float(lwlrap)
    if not scores:
        listed = ", ".join(architectures) or "none listed"
        raise FileNotFoundError(f"{root}: no trained and evaluated tagger of tagging.architectures ({listed}); "
                                "run `make repro` or pass --model")
    best = max(scores, key=scores.get)  # max keeps the first of equal scores
    return root / "train" / best / "model.pt"


def evaluation_tagger(choice: Optional[str], architectures: list[str], root: Path = TAGGING
                      ) -> tuple[Optional[Path], str]:
    """(the tagger checkpoint `hushkit evaluate --tagger` predicts noise categories with, a note for standard
    error): `choice` itself, none for `none`, else the last `dvc repro`'s best tagger (best_tagger), or none and a
    note saying so when it trained none."""
    if choice is not None:
        return (None, "") if choice.lower() == NO_TAGGER else (Path(choice), "")
    try:
        return best_tagger(architectures, root), ""
    except FileNotFoundError:
        listed = ", ".join(architectures) or "none listed"
        return None, (f"note: scores not broken down by predicted noise category: {root} holds no trained and "
                      f"evaluated tagger of tagging.architectures ({listed}); --tagger CKPT names one")


def tagger_architectures(section: Any, path: Path) -> list[str]:
    """tagging.architectures of the params file `path` (`section`: its `tagging` section; None: no taggers);
    ValueError naming the file when the section is not a mapping or the list not one of names."""
    if section is None:
        return []
    if not isinstance(section, dict):
        raise ValueError(f"{path}: tagging must be a mapping, got {section!r}")
    architectures = section.get("architectures", [])
    if not isinstance(architectures, list) or not all(isinstance(arch, str) for arch in architectures):
        raise ValueError(f"{path}: tagging.architectures must be a list of strings, got {architectures!r}")
    return architectures


def tag_defaults(params_file: Optional[Path]):
    """(tagging.tag's settings, tagging.architectures) of the params file: `params_file`, else ./params.yaml when
    there is one, else the schema's defaults and no architectures."""
    import yaml

    from hushkit.config.schema import ParamsError
    from hushkit.config.tagging import TagParams
    from hushkit.params import load_params

    path = PARAMS if params_file is None else params_file
    if not path.is_file():
        if params_file is None:
            return TagParams(), []
        raise FileNotFoundError(f"{path}: no such params file")
    try:
        section = load_params(path).get("tagging")
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if section is None:
        return TagParams(), []
    architectures = tagger_architectures(section, path)
    try:  # only what this command reads: the stages check the rest
        return TagParams.parse(section.get("tag"), "tagging.tag"), architectures
    except ParamsError as err:
        raise ValueError(f"{path}: {err}") from None


def file_summary(source: Path, rows: list[dict], labels: list[str], threshold: float,
                 segment_seconds: Optional[float]) -> str:
    """`source: speech, keyboard` (the labels tagged anywhere in it), with the segment count when segmented."""
    tagged = {tag for row in rows for tag in row["tags"].split(";") if tag}
    words = ", ".join(label for label in labels if label in tagged) or f"no label above {threshold:g}"
    count = f"{len(rows)} segment{'s' if len(rows) > 1 else ''}"
    where = f" (in {count} of {segment_seconds:g} s)" if segment_seconds is not None else ""
    return f"{source}: {words}{where}"


def tag(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT",
        help="Audio files (any format, rate and channel count soundfile reads), folders (searched recursively) or "
             "globs; quote a glob to let hushkit expand it (** included)."),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", show_default="standard output",
        help="The CSV file to write (through a temp file renamed into place); an existing one is left alone "
             "(exit 2) unless --overwrite. `-`: standard output."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", show_default="the last dvc repro's best tagger (highest lwlrap)",
        help="A tagger checkpoint (.pt), e.g. data/tagging/train/gcnn/model.pt."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", "-t", show_default="--params tagging.tag.threshold: 0.5",
        help="A label is tagged where its probability is above this (0 to 1)."),
    segment_seconds: Optional[float] = typer.Option(
        None, "--segment-seconds", "-s", show_default="--params tagging.tag.segment_seconds: null",
        help="Tag each stretch of this many seconds on its own row (the last one may be shorter); 0: whole files."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    params_file: Optional[Path] = typer.Option(
        None, "--params", show_default="params.yaml when there is one",
        help="The params file whose tagging.tag gives the defaults (and tagging.architectures the default model)."),
) -> None:
    """Say what is in recordings (speech, noise categories), per file or per segment, as a CSV table: each file's
    (or segment's) probability of every label of the tagger (speech and the noise categories it was trained on),
    and its tags, the labels above the threshold. The table (file, start_s, end_s, one column per label, tags) goes
    to standard output or --output; a line per file on standard error says what it holds. A file that cannot be
    tagged is reported in one line naming it and the run goes on; the exit code is then 2."""
    from hushkit.audio import AudioReadError
    from hushkit.enhance import expand_inputs
    from hushkit.io import OutputError, atomic_output
    from hushkit.tagging.inference import load_tagger, tag_file, tags_table

    with one_line_errors(FileNotFoundError, ValueError, OutputError):
        defaults, architectures = tag_defaults(params_file)
        threshold = defaults.threshold if threshold is None else threshold
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"--threshold must be in [0, 1], got {threshold:g}")
        if segment_seconds is None:
            segment_seconds = defaults.segment_seconds
        elif not (math.isfinite(segment_seconds) and segment_seconds >= 0):
            raise ValueError(f"--segment-seconds must be > 0 (0: whole files), got {segment_seconds:g}")
        segment_seconds = segment_seconds or None
        destination = None if output in (None, "-") else Path(output)
        if destination is not None and destination.is_dir():
            raise OutputError(f"{destination}: is a folder; --output is the CSV file to write")
        if destination is not None and destination.exists() and not overwrite:
            raise OutputError(f"{destination}: exists; pass --overwrite to replace it")
        checkpoint = model or best_tagger(architectures)
        tagger = load_tagger(checkpoint)

    rows: list[dict] = []
    failed = tagged = 0
    seen: set[Path] = set()
    for item in inputs:
        try:
            jobs = expand_inputs([item])
        except FileNotFoundError as err:
            failed += 1
            typer.echo(f"error: {err}", err=True)
            continue
        for job in jobs:
            if job.source.resolve() in seen:  # named twice (a folder and a glob): tagged once
                continue
            seen.add(job.source.resolve())
            try:
                found = tag_file(tagger, job.source, threshold=threshold, segment_seconds=segment_seconds)
            except (AudioReadError, ValueError) as err:
                failed += 1
                typer.echo(f"error: {err}", err=True)
                continue
            tagged += 1
            rows += found
            typer.echo(file_summary(job.source, found, tagger.labels, threshold, segment_seconds), err=True)

    text = tags_table(rows, tagger.labels).to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    if destination is None:
        typer.echo(text, nl=False)
    elif tagged:
        with one_line_errors(OutputError):
            with atomic_output(destination) as tmp:
                tmp.write_text(text)
    if tagged + failed > 1 or not tagged:
        where = "" if destination is None else (f" into {destination}" if tagged else f"; {destination} not written")
        typer.echo(f"{tagged} of {tagged + failed} files tagged{where} with {checkpoint} "
                   f"(threshold {threshold:g})" + (f"; {failed} failed" if failed else ""), err=True)
    if failed:
        raise typer.Exit(code=ERROR)
