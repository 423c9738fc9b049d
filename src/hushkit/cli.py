"""The `hushkit` command."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import typer

from hushkit import __version__
from hushkit import cli_registry, cli_sweep, cli_tag
from hushkit.cli_errors import ERROR, REFUSED, one_line_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, help="hushkit: speech denoising, corpora to registry.")
SUMMARY = Path("data/summary/summary.json")


def best_trained_model(summary: Path = SUMMARY) -> Path:
    """The checkpoint of the architecture the last `dvc repro` named best (data/summary/summary.json)."""
    import json

    if not summary.is_file():
        raise FileNotFoundError(f"{summary}: no pipeline results; run `make repro` or pass --model")
    best = json.loads(summary.read_text())["best"]
    return summary.parent.parent / "train" / best / "model.pt"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hushkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """hushkit: speech denoising, from corpora to a promoted, exported model."""


@app.command()
def enhance(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT",
        help="Audio files (any format soundfile reads), folders (searched recursively) or globs; quote a glob "
             "to let hushkit expand it (** included). `-`: a live raw PCM stream on standard input (with -o -)."),
    output: Path = typer.Option(
        ..., "-o", "--output",
        help="The output file for one input file; otherwise a folder, under which the inputs' tree is mirrored. "
             "`-`: standard output (with INPUT -). An existing output file is left alone (reported, exit 2) "
             "unless --overwrite."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", show_default="the best model of the last dvc repro",
        help="Checkpoint (.pt), exported .onnx or .ts file, MLflow URI (models:/NAME@champion, models:/NAME/3, "
             "runs:/ID/model) or MLflow run id."),
    stream: bool = typer.Option(
        False, "--stream",
        help="Streaming path (causal models: crnn, crced): chunk by chunk with all state carried; equals offline "
             "whole-file processing. Always on for a live stream (INPUT -)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist."),
    chunk_seconds: Optional[float] = typer.Option(
        None, "--chunk-seconds", min=0.001, show_default="10 s for files, 0.01 s (10 ms) for a live stream",
        help="Audio enhanced at a time: memory is bounded by this, not the file. A live stream's block."),
    overlap_seconds: float = typer.Option(0.5, "--overlap-seconds", min=0.0,
                                          help="Overlap of neighbouring chunks, cross-faded (at most half a chunk)."),
    rate: Optional[int] = typer.Option(None, "--rate", show_default="16000",
                                       help="Live stream (INPUT -): sample rate of the raw PCM, in and out."),
    channels: Optional[int] = typer.Option(None, "--channels", show_default="1",
                                           help="Live stream (INPUT -): channels of the raw PCM, in and out."),
) -> None:
    """Denoise files, folders and globs; each output keeps its input's sample rate, channels and subtype, and is
    written to a temp file renamed into place (a failed file leaves nothing). A file that cannot be read or
    written is reported in one line naming it and the run goes on; the exit code is 2 if any was not enhanced.

    Live: `arecord -f S16_LE -r 16000 -c 1 | hushkit enhance - -o - | aplay -f S16_LE -r 16000 -c 1` reads raw
    signed 16-bit little-endian PCM (--rate, --channels) from standard input and writes the enhanced PCM in the
    same format to standard output block by block as it arrives (10 ms blocks; messages go to standard error).
    The output is as long as the input and trails it by a fixed delay: its first frames are that delay's
    silence (the model's latency, e.g. 512 frames = 32 ms for crnn at 16 kHz, plus the resamplers' delay at
    another rate; printed at the start with the measured processing time per block, and again at the end).
    """
    from hushkit.audio import AudioReadError
    from hushkit.enhance import plan_outputs
    from hushkit.inference import load_enhancer

    live = "-" in inputs or str(output) == "-"
    with one_line_errors(AudioReadError, FileNotFoundError, ValueError):
        if live:
            from hushkit.live import BLOCK_SECONDS, check_format

            if inputs != ["-"] or str(output) != "-":
                raise ValueError("a live stream reads standard input and writes standard output: give `-` as the "
                                 "only INPUT and `-o -`")
            rate, channels = 16000 if rate is None else rate, 1 if channels is None else channels
            chunk_seconds = BLOCK_SECONDS if chunk_seconds is None else chunk_seconds
            check_format(rate, channels, round(chunk_seconds * rate))
        elif rate is not None or channels is not None:
            raise ValueError("--rate and --channels describe raw PCM on standard input: they need INPUT `-`")
        chunk_seconds = 10.0 if chunk_seconds is None else chunk_seconds
        if not (stream or live) and overlap_seconds > chunk_seconds / 2:  # streaming has no overlap
            raise ValueError(f"--overlap-seconds {overlap_seconds} is more than half of --chunk-seconds "
                             f"{chunk_seconds}")
        pairs = [] if live else plan_outputs(inputs, output)
        enhancer = load_enhancer(model or best_trained_model())
        if stream or live:
            enhancer.streamer()  # refuses a model that cannot stream, before any file is touched
    if live:
        return _enhance_live(enhancer, rate, channels, round(chunk_seconds * rate))
    failed, skipped = _enhance_all(pairs, enhancer, stream=stream, overwrite=overwrite, chunk_seconds=chunk_seconds,
                                   overlap_seconds=overlap_seconds)
    if len(pairs) > 1:
        problems = [f"{skipped} skipped (output exists; --overwrite replaces it)"] if skipped else []
        problems += [f"{failed} failed"] if failed else []
        typer.echo(f"{len(pairs) - failed - skipped} of {len(pairs)} files enhanced into {output} with "
                   f"{enhancer.description}" + "".join(f"; {problem}" for problem in problems))
    if failed or skipped:
        raise typer.Exit(code=ERROR)


def _enhance_live(enhancer, rate: int, channels: int, block_frames: int) -> None:
    """Standard input to standard output (nothing else on it); latency lines and errors on standard error."""
    import os
    import sys

    import torch

    from hushkit.live import run_live

    # A block is a few STFT frames: splitting that work over threads costs more in hand-offs than it saves, and a
    # thread waiting for a busy core stalls the block.
    torch.set_num_threads(1)
    with one_line_errors(ValueError):
        run = run_live(sys.stdin.buffer, sys.stdout.buffer, enhancer, rate=rate, channels=channels,
                       block_frames=block_frames, report=lambda line: typer.echo(line, err=True))
    if run.ended == "output closed":  # the reader went away: no second BrokenPipeError when Python exits
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if run.ended == "interrupted":
        raise typer.Exit(code=130)


def _enhance_all(pairs: list[tuple[Path, Path]], enhancer, *, stream: bool, overwrite: bool, chunk_seconds: float,
                 overlap_seconds: float) -> tuple[int, int]:
    """Enhance every (source, destination) pair with a progress bar (on a terminal) over files and each file's
    audio. A file that cannot be read or written is reported (one line naming it) and the rest go on; an existing
    destination is left alone unless `overwrite` (reported too). Returns (failed, skipped) counts."""
    import sys

    import soundfile as sf
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hushkit.audio import AudioReadError
    from hushkit.enhance import enhance_file
    from hushkit.io import OutputError

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn(), TimeRemainingColumn())
    failed = skipped = 0
    with Progress(*columns, console=console, disable=not console.is_terminal, transient=True) as progress:
        files = progress.add_task("files", total=len(pairs))
        for source, destination in pairs:
            progress.advance(files)
            # print(), not typer.echo: rich's live display redirects sys.stdout/stderr to print above the bars
            if destination.exists() and not overwrite:
                skipped += 1
                print(f"error: {destination}: exists; pass --overwrite to replace it ({source} not enhanced)",
                      file=sys.stderr)
                continue
            try:
                frames = sf.info(str(source)).frames
            except (sf.LibsndfileError, RuntimeError, TypeError):
                frames = None  # enhance_file says why, naming the file
            audio = progress.add_task(source.name, total=frames or None)
            try:
                seconds = enhance_file(source, destination, enhancer, overwrite=overwrite,
                                       chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds, stream=stream,
                                       on_progress=lambda n, task=audio: progress.advance(task, n))
            except (AudioReadError, FileNotFoundError, FileExistsError, ValueError, OutputError) as err:
                failed += 1
                print(f"error: {err}", file=sys.stderr)
            else:
                print(f"{destination}: {seconds:.2f} s enhanced with {enhancer.description}")
            progress.remove_task(audio)
    return failed, skipped


def _models(references: list[str], params: dict) -> dict[str, str]:
    """NAME=REF or REF (named after its folder when it is data/train/<arch>/model.pt, else its file stem); none
    given: every architecture the last `dvc repro` trained. Two models under one name are refused."""
    if not references:
        found = {arch: Path("data/train") / arch / "model.pt" for arch in params["train"]["architectures"]}
        return {arch: str(path) for arch, path in found.items() if path.is_file()}
    models: dict[str, str] = {}
    for reference in references:
        name, _, ref = reference.rpartition("=") if "=" in reference else ("", "", reference)
        path = Path(ref)
        # data/train/<arch>/model.pt and data/export/<arch>/model.onnx are named after their architecture
        name = name or (path.absolute().parent.name if path.stem == "model" else path.stem)
        if name in models:
            raise ValueError(f"two models named {name!r} ({models[name]} and {ref}); name them with -m NAME=REF")
        models[name] = ref
    return models


@app.command()
def evaluate(
    clean: Path = typer.Option(..., "--clean", help="Folder of clean reference recordings."),
    noisy: Path = typer.Option(..., "--noisy", help="Folder of the same recordings with noise (same file names)."),
    out: Path = typer.Option(
        Path("hushkit-evaluation"), "--out", "-o",
        help="Folder for the report: written in a temp folder beside it and moved into place when complete (a "
             "failed run leaves it as it was). It must be missing or an empty folder, unless --overwrite."),
    model: list[str] = typer.Option([], "--model", "-m", show_default="every model the last dvc repro trained",
                                    help="A model to score, NAME=REF or REF (checkpoint, ONNX file, MLflow URI); "
                                         "repeat for several. NAME: letters, digits, '.', '_', '-'."),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params.yaml for the baselines list."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an existing --out folder as a whole (once the new report is "
                                        "complete)."),
    tagger: Optional[str] = typer.Option(
        None, "--tagger", show_default="the last dvc repro's best tagger (highest lwlrap), if any",
        help="A tagger checkpoint (.pt): the scores are also broken down by the noise category it predicts for "
             "each noisy file (marked as predicted). `none`: no such breakdown."),
) -> None:
    """Score your own paired recordings with every baseline and model: leaderboard, plots, listening report."""
    from hushkit.audio import AudioReadError
    from hushkit.baselines import missing_runtimes, require_runtimes
    from hushkit.cli_tag import evaluation_tagger, tagger_architectures
    from hushkit.evaluation.folders import evaluate_folders
    from hushkit.io import OutputError
    from hushkit.params import load_params
    from hushkit.tagging.inference import load_tagger, predicted_categories

    params = load_params(params_file) if params_file.is_file() else {"train": {"architectures": []}, "evaluate": {}}
    settings = params.get("evaluate", {})
    baselines = settings.get("baselines")
    if not baselines:  # no params: every reference system whose runtime is installed, saying which are left out
        baselines = ["noisy", "dsp", "rnnoise", "deepfilternet3"]
        left_out = missing_runtimes(baselines)
        if left_out:
            typer.echo(f"note: {', '.join(left_out)} not scored (pip install 'hushkit[baselines]' adds them)",
                       err=True)
            baselines = [name for name in baselines if name not in left_out]
    with one_line_errors(AudioReadError, FileNotFoundError, ValueError, OutputError):
        require_runtimes(baselines)
        checkpoint, note = evaluation_tagger(tagger, tagger_architectures(params.get("tagging"), params_file))
        board = evaluate_folders(clean, noisy, out, models=_models(model, params), baselines=baselines,
                                 dnsmos_files=settings.get("dnsmos_files"),
                                 report_examples=int(settings.get("report_examples", 4)), overwrite=overwrite,
                                 categorise=None if checkpoint is None else partial(predicted_categories,
                                                                                    load_tagger(checkpoint)),
                                 tagger_name=str(checkpoint or ""))
    typer.echo((out / "leaderboard.md").read_text())
    if note:  # after the evaluation: an input's error stays the one line a failed run prints
        typer.echo(note, err=True)
    typer.echo(f"{len(board)} systems scored; report: {out / 'report.html'}")


# The registry gate (hushkit.cli_registry), registered here so that `hushkit --help` lists it after `evaluate`.
app.command()(cli_registry.promote)
app.command()(cli_registry.rollback)
app.command()(cli_registry.history)
# Hyper-parameter search over DVC experiments (hushkit.cli_sweep).
app.command()(cli_sweep.sweep)
# Audio tagging of recordings (hushkit.cli_tag).
app.command()(cli_tag.tag)


@app.command("params")
def params_command(
    profile: str = typer.Option(..., "--profile", "-p", help="profiles/<NAME>.yaml, or the path of an overlay file."),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="The params file the profile overlays."),
    output: Optional[str] = typer.Option(None, "--output", "-o", show_default="the --params file, in place",
                                         help="Where to write the merged params; '-' prints them."),
) -> None:
    """Merge a profile into params.yaml (comments kept) so that `dvc repro` runs it; `git checkout params.yaml`
    returns to the defaults."""
    from hushkit.io import atomic_path
    from hushkit.params import apply_profile

    with one_line_errors(FileNotFoundError, ValueError):
        text, changed = apply_profile(params_file, profile)
    if output == "-":
        typer.echo(text, nl=False)
        return
    target = Path(output) if output else params_file
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    shown = ", ".join(changed) if changed else "nothing (already applied)"
    typer.echo(f"{target}: profile {profile} applied; changed {shown}", err=True)


@app.command("readme-results")
def readme_results(
    readme: Path = typer.Option(Path("README.md"), "--readme", help="The README with the results markers."),
    leaderboard: Path = typer.Option(Path("data/summary/leaderboard.md"), "--leaderboard",
                                     help="The summary stage's leaderboard."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if the README's results block is not "
                                                      "the leaderboard's."),
) -> None:
    """Put the leaderboard (main table, per-condition tables) into README.md between its results markers."""
    from hushkit.readme import ReadmeError, update_readme

    with one_line_errors(FileNotFoundError, ReadmeError):
        changed = update_readme(readme, leaderboard, write=not check)
    if check:
        typer.echo(f"{readme}: results {'differ from' if changed else 'match'} {leaderboard}")
        if changed:
            raise typer.Exit(code=REFUSED)
        return
    typer.echo(f"{readme}: results {'updated from' if changed else 'already match'} {leaderboard}")


if __name__ == "__main__":  # python -m hushkit.cli: the command without the installed entry point
    app(prog_name="hushkit")
