"""The `hushkit` command."""
from __future__ import annotations

import contextlib
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


# Exit codes, so CI or an orchestrator can branch: 0 done, 1 refused by the rules (`promote`), 2 could not act.
REFUSED, ERROR = 1, 2


@contextlib.contextmanager
def _one_line_errors(*errors: type[Exception]):
    """`errors` (a bad file, path, setting or store: what a user can act on) as one `error:` line and exit 2, not
    a traceback."""
    try:
        yield
    except errors as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=ERROR)


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
             "to let hushkit expand it (** included)."),
    output: Path = typer.Option(
        ..., "-o", "--output",
        help="The output file for one input file; otherwise a folder, under which the inputs' tree is mirrored."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", show_default="the best model of the last dvc repro",
        help="Checkpoint (.pt), exported .onnx or .ts file, MLflow URI (models:/NAME@champion, models:/NAME/3, "
             "runs:/ID/model) or MLflow run id."),
    stream: bool = typer.Option(
        False, "--stream",
        help="Streaming path (causal models: crnn, crced): chunk by chunk with all state carried; equals offline "
             "whole-file processing."),
    chunk_seconds: float = typer.Option(10.0, "--chunk-seconds", min=0.01,
                                        help="Audio enhanced at a time: memory is bounded by this, not the file."),
    overlap_seconds: float = typer.Option(0.5, "--overlap-seconds", min=0.0,
                                          help="Overlap of neighbouring chunks, cross-faded (at most half a chunk)."),
) -> None:
    """Denoise files, folders and globs; each output keeps its input's sample rate, channels and subtype."""
    from hushkit.audio import AudioReadError
    from hushkit.enhance import plan_outputs
    from hushkit.inference import load_enhancer

    with _one_line_errors(AudioReadError, FileNotFoundError, ValueError):
        if not stream and overlap_seconds > chunk_seconds / 2:  # streaming has no overlap
            raise ValueError(f"--overlap-seconds {overlap_seconds} is more than half of --chunk-seconds "
                             f"{chunk_seconds}")
        pairs = plan_outputs(inputs, output)
        enhancer = load_enhancer(model or best_trained_model())
        if stream:
            enhancer.streamer()  # refuses a model that cannot stream, before any file is touched
    failed = _enhance_all(pairs, enhancer, stream=stream, chunk_seconds=chunk_seconds,
                          overlap_seconds=overlap_seconds)
    if len(pairs) > 1:
        typer.echo(f"{len(pairs) - failed} of {len(pairs)} files enhanced into {output} with {enhancer.description}")
    if failed:
        raise typer.Exit(code=ERROR)


def _enhance_all(pairs: list[tuple[Path, Path]], enhancer, *, stream: bool, chunk_seconds: float,
                 overlap_seconds: float) -> int:
    """Enhance every (source, destination) pair with a progress bar (on a terminal) over files and each file's
    audio; an unusable file is reported (one line naming it) and skipped. Returns how many failed."""
    import sys

    import soundfile as sf
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hushkit.audio import AudioReadError
    from hushkit.enhance import enhance_file

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn(), TimeRemainingColumn())
    failed = 0
    with Progress(*columns, console=console, disable=not console.is_terminal, transient=True) as progress:
        files = progress.add_task("files", total=len(pairs))
        for source, destination in pairs:
            try:
                frames = sf.info(str(source)).frames
            except (sf.LibsndfileError, RuntimeError, TypeError):
                frames = None  # enhance_file says why, naming the file
            audio = progress.add_task(source.name, total=frames or None)
            try:
                seconds = enhance_file(source, destination, enhancer, chunk_seconds=chunk_seconds,
                                       overlap_seconds=overlap_seconds, stream=stream,
                                       on_progress=lambda n, task=audio: progress.advance(task, n))
            # print(), not typer.echo: rich's live display redirects sys.stdout/stderr to print above the bars
            except (AudioReadError, FileNotFoundError, ValueError) as err:
                failed += 1
                print(f"error: {err}", file=sys.stderr)
            else:
                print(f"{destination}: {seconds:.2f} s enhanced with {enhancer.description}")
            progress.remove_task(audio)
            progress.advance(files)
    return failed


def _models(references: list[str], params: dict) -> dict[str, str]:
    """NAME=REF or REF (named after its folder when it is data/train/<arch>/model.pt, else its file stem); none
    given: every architecture the last `dvc repro` trained."""
    if not references:
        found = {arch: Path("data/train") / arch / "model.pt" for arch in params["train"]["architectures"]}
        return {arch: str(path) for arch, path in found.items() if path.is_file()}
    models = {}
    for reference in references:
        name, _, ref = reference.rpartition("=") if "=" in reference else ("", "", reference)
        path = Path(ref)
        # data/train/<arch>/model.pt and data/export/<arch>/model.onnx are named after their architecture
        models[name or (path.parent.name if path.stem == "model" else path.stem)] = ref
    return models


@app.command()
def evaluate(
    clean: Path = typer.Option(..., "--clean", help="Folder of clean reference recordings."),
    noisy: Path = typer.Option(..., "--noisy", help="Folder of the same recordings with noise (same file names)."),
    out: Path = typer.Option(Path("hushkit-evaluation"), "--out", "-o", help="Where to write the report."),
    model: list[str] = typer.Option([], "--model", "-m", show_default="every model the last dvc repro trained",
                                    help="A model to score, NAME=REF or REF (checkpoint, ONNX file, MLflow URI); "
                                         "repeat for several."),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params.yaml for the baselines list."),
) -> None:
    """Score your own paired recordings with every baseline and model: leaderboard, plots, listening report."""
    from hushkit.audio import AudioReadError
    from hushkit.evaluation.folders import evaluate_folders
    from hushkit.params import load_params

    params = load_params(params_file) if params_file.is_file() else {"train": {"architectures": []}, "evaluate": {}}
    settings = params.get("evaluate", {})
    with _one_line_errors(AudioReadError, FileNotFoundError, ValueError):
        board = evaluate_folders(clean, noisy, out, models=_models(model, params),
                                 baselines=settings.get("baselines") or ["noisy", "dsp", "rnnoise", "deepfilternet3"],
                                 dnsmos_files=settings.get("dnsmos_files"),
                                 report_examples=int(settings.get("report_examples", 4)))
    typer.echo((out / "leaderboard.md").read_text())
    typer.echo(f"{len(board)} systems scored; report: {out / 'report.html'}")


# --- registry gate: promote / rollback / history (hushkit.registry) ----------------------------------------------
# Exit codes (REFUSED, ERROR above): 0 promoted (or the candidate already is champion), 1 refused by the rules (not
# better, margin not met, different test set), 2 could not act (no store, model, version or tag).


def _registry(params_file: Path, tracking_uri: Optional[str], model: Optional[str]):
    """The pipeline's registry: params' mlflow section (MLFLOW_TRACKING_URI overrides it, --tracking-uri both), the
    registered model's name, and the `promote` settings."""
    import logging

    from hushkit import tracking
    from hushkit.params import load_params

    params = load_params(params_file) if params_file.is_file() else {}
    section = params.get("mlflow") or {}
    uri = tracking_uri or tracking.tracking_uri(section)
    store = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    if store is not None and not Path(store).is_file():   # MLflow would silently create an empty store
        raise FileNotFoundError(f"no MLflow store at {store}: run the pipeline first (`make repro`), or pass "
                                "--tracking-uri / set MLFLOW_TRACKING_URI")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow import MlflowClient

    name = model or section.get("registered_model", "hushkit-denoiser")
    return MlflowClient(tracking_uri=uri, registry_uri=uri), name, params.get("promote") or {}


def _registry_errors() -> tuple[type[Exception], ...]:
    """What promote/rollback/history report as one line (exit 2) instead of a traceback."""
    from mlflow.exceptions import MlflowException

    from hushkit.registry import RegistryError
    from hushkit.tracking import LockError

    return RegistryError, LockError, MlflowException, FileNotFoundError, ValueError


_MODEL_OPTION = typer.Option(None, "--model", show_default="params mlflow.registered_model, else hushkit-denoiser",
                             help="Registered model name.")
_URI_OPTION = typer.Option(None, "--tracking-uri", show_default="MLFLOW_TRACKING_URI, else params mlflow.tracking_uri",
                           help="MLflow tracking/registry URI (sqlite:///path or http://host:port).")
_PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="params.yaml (sections mlflow and promote).")


@app.command()
def promote(
    metric: Optional[str] = typer.Option(None, "--metric", show_default="params promote.metric, else pesq",
                                         help="Test metric to compare (tag test_<metric>); rtf: lower is better."),
    min_margin: Optional[float] = typer.Option(None, "--min-margin", show_default="params promote.min_margin, else 0",
                                               help="Smallest improvement over the champion that promotes."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the promotion."),
    user: Optional[str] = typer.Option(None, "--user", show_default="the login name", help="Who, recorded."),
    model: Optional[str] = _MODEL_OPTION,
    tracking_uri: Optional[str] = _URI_OPTION,
    params_file: Path = _PARAMS_OPTION,
) -> None:
    """Make @challenger the @champion if it beats the champion on the same test set (exit 0), else refuse (exit 1)."""
    with _one_line_errors(*_registry_errors()):
        client, name, settings = _registry(params_file, tracking_uri, model)
        from hushkit.registry import promote as promote_version

        decision = promote_version(client, name, metric=metric or settings.get("metric", "pesq"),
                                   min_margin=float(settings.get("min_margin", 0.0) if min_margin is None
                                                    else min_margin), user=user, reason=reason)
    typer.echo(f"{name}: {decision.message}")
    if decision.status == "refused":
        raise typer.Exit(code=REFUSED)


@app.command()
def rollback(
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the rollback."),
    user: Optional[str] = typer.Option(None, "--user", show_default="the login name", help="Who, recorded."),
    model: Optional[str] = _MODEL_OPTION,
    tracking_uri: Optional[str] = _URI_OPTION,
    params_file: Path = _PARAMS_OPTION,
) -> None:
    """Move @champion back to the previous champion (as `hushkit history` shows it)."""
    with _one_line_errors(*_registry_errors()):
        client, name, _ = _registry(params_file, tracking_uri, model)
        from hushkit.registry import rollback as rollback_champion

        result = rollback_champion(client, name, user=user, reason=reason)
    typer.echo(f"{name}: {result.message}")


@app.command()
def history(
    metric: Optional[str] = typer.Option(None, "--metric", show_default="params promote.metric, else pesq",
                                         help="Test metric to show per version."),
    model: Optional[str] = _MODEL_OPTION,
    tracking_uri: Optional[str] = _URI_OPTION,
    params_file: Path = _PARAMS_OPTION,
) -> None:
    """Every version (architecture, test score, test set, aliases) and every champion move."""
    with _one_line_errors(*_registry_errors()):
        client, name, settings = _registry(params_file, tracking_uri, model)
        from hushkit.registry import CHAMPION, MANIFEST_TAG, ROLLED_BACK_TAG, history as champion_history, versions

        metric = metric or settings.get("metric", "pesq")
        rows, moves = versions(client, name), champion_history(client, name)
        aliases: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    typer.echo(f"{name}: {len(rows)} versions (* = @{CHAMPION})")
    typer.echo(f"  {'version':>8}  {'architecture':<14}{metric:>10}  {'test set':<14}{'aliases':<24}promoted")
    for v in rows:
        marks = aliases.get(str(v.version), [])
        promoted = f"{v.tags['promoted_at']} by {v.tags.get('promoted_by', '?')}" if "promoted_at" in v.tags else ""
        if ROLLED_BACK_TAG in v.tags:
            promoted += f"; rolled back {v.tags[ROLLED_BACK_TAG]} by {v.tags.get('rolled_back_by', '?')}"
        typer.echo(f"{'*' if CHAMPION in marks else ' '} {v.version:>8}  {v.tags.get('architecture', '?'):<14}"
                   f"{v.tags.get(f'test_{metric}', '-'):>10}  {v.tags.get(MANIFEST_TAG, '-')[:12]:<14}"
                   f"{','.join(sorted(marks)) or '-':<24}{promoted}")
    typer.echo(f"champion moves ({len(moves)}, oldest first):" if moves else "champion moves: none yet")
    for m in moves:
        scores = f"  {m['metric']} {m['score']:.4f}" if m.get("metric") else ""
        if m.get("previous_score") is not None:
            scores += f" vs {m['previous_score']:.4f}"
        before = f"v{m['previous']}" if m.get("previous") else "none"
        typer.echo(f"  {m['at']}  {m['action']:<8} {before} -> v{m['version']}  by {m['by']}"
                   f"{scores}{'  (' + m['reason'] + ')' if m.get('reason') else ''}")


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

    with _one_line_errors(FileNotFoundError, ValueError):
        text, changed = apply_profile(params_file, profile)
    if output == "-":
        typer.echo(text, nl=False)
        return
    target = Path(output) if output else params_file
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    shown = ", ".join(changed) if changed else "nothing (already applied)"
    typer.echo(f"{target}: profile {profile} applied; changed {shown}", err=True)
