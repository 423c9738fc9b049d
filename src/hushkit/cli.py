"""The `hushkit` command."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hushkit import __version__

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
    input: Path = typer.Argument(..., help="Audio file to denoise (any format soundfile reads)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the enhanced audio."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", show_default="the best model of the last dvc repro",
        help="Checkpoint (.pt), ONNX file, or MLflow URI (models:/NAME@alias, runs:/...)."),
) -> None:
    """Denoise one file; the output keeps the input's sample rate and channels."""
    from hushkit.audio import AudioReadError
    from hushkit.enhance import enhance_file
    from hushkit.inference import load_enhancer

    try:
        enhancer = load_enhancer(model or best_trained_model())
        seconds = enhance_file(input, output, enhancer)
    except (AudioReadError, FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2)
    typer.echo(f"{output}: {seconds:.2f} s enhanced with {enhancer.description}")
