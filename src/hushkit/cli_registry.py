"""The registry gate of the `hushkit` command: promote, rollback, history (over hushkit.registry).

hushkit.cli registers these functions as its commands. Exit codes (hushkit.cli_errors): 0 promoted (or the
candidate already is champion), 1 refused by the rules (not better, margin not met, different test set), 2 could
not act (no store, model, version or tag).
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Optional

import typer

from hushkit.cli_errors import REFUSED, one_line_errors
from hushkit.registry import REGISTERED_MODEL, REGISTERED_TAGGER

TAGGER_METRIC = "lwlrap"   # the taggers' test score that promote and history compare by default


def _registry(params_file: Path, tracking_uri: Optional[str], model: Optional[str], tagger: bool = False):
    """The pipeline's registry: params' mlflow section (MLFLOW_TRACKING_URI overrides it, --tracking-uri both), the
    registered model's name (`tagger`: the taggers', params tagging.registered_model) and the `promote` settings
    (`tagger`: compared by lwlrap unless --metric says otherwise)."""
    import logging

    from hushkit import tracking
    from hushkit.config import MlflowParams, PromoteParams
    from hushkit.params import load_params

    params = load_params(params_file) if params_file.is_file() else {}
    section = params.get("mlflow") or {}
    try:
        mlflow_settings = MlflowParams.parse(section, "mlflow")
        promote_settings = PromoteParams.parse(params.get("promote"), "promote")
    except ValueError as err:
        raise ValueError(f"{params_file}: {err}") from None
    uri = tracking_uri or tracking.tracking_uri(section)
    store = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    if store is not None and not Path(store).is_file():   # MLflow would silently create an empty store
        raise FileNotFoundError(f"no MLflow store at {store}: run the pipeline first (`make repro`), or pass "
                                "--tracking-uri / set MLFLOW_TRACKING_URI")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    MlflowClient = _mlflow_module("mlflow").MlflowClient

    if tagger:
        name = model or (params.get("tagging") or {}).get("registered_model") or REGISTERED_TAGGER
        promote_settings = dataclasses.replace(promote_settings, metric=TAGGER_METRIC)
    else:
        name = model or mlflow_settings.registered_model or REGISTERED_MODEL
    return MlflowClient(tracking_uri=uri, registry_uri=uri), name, promote_settings


@contextlib.contextmanager
def _opened_registry(params_file: Path, tracking_uri: Optional[str], model: Optional[str], tagger: bool = False):
    """`_registry(...)` for the body of a command, whose registry, store and settings errors are one line (exit 2)."""
    with one_line_errors(*_registry_errors()):
        yield _registry(params_file, tracking_uri, model, tagger)


def _registry_errors() -> tuple[type[Exception], ...]:
    """What promote/rollback/history report as one line (exit 2) instead of a traceback."""
    with one_line_errors():
        MlflowException = _mlflow_module("mlflow.exceptions").MlflowException
    from hushkit.registry import RegistryError
    from hushkit.tracking import LockError

    return RegistryError, LockError, MlflowException, FileNotFoundError, ValueError


def _mlflow_module(name: str):
    from hushkit.errors import import_extra

    return import_extra(name, "pipeline", "the model registry (promote, rollback, history)")


_USER_OPTION = typer.Option(None, "--user", show_default="the login name", help="Who, recorded.")
_MODEL_OPTION = typer.Option(None, "--model", show_default=f"params mlflow.registered_model, else {REGISTERED_MODEL}",
                             help="Registered model name.")
_URI_OPTION = typer.Option(None, "--tracking-uri", show_default="MLFLOW_TRACKING_URI, else params mlflow.tracking_uri",
                           help="MLflow tracking/registry URI (sqlite:///path or http://host:port).")
_PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="params.yaml (sections mlflow and promote).")
_TAGGER_OPTION = typer.Option(False, "--tagger", help=f"The registered tagger (params tagging.registered_model, else "
                              f"{REGISTERED_TAGGER}), compared by {TAGGER_METRIC} unless --metric.")


def promote(
    metric: Optional[str] = typer.Option(None, "--metric", show_default="params promote.metric, else pesq",
                                         help="Test metric to compare (tag test_<metric>); rtf: lower is better."),
    min_margin: Optional[float] = typer.Option(None, "--min-margin", show_default="params promote.min_margin, else 0",
                                               help="Smallest improvement over the champion that promotes."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the promotion."),
    user: Optional[str] = _USER_OPTION,
    model: Optional[str] = _MODEL_OPTION,
    tracking_uri: Optional[str] = _URI_OPTION,
    params_file: Path = _PARAMS_OPTION,
    tagger: bool = _TAGGER_OPTION,
) -> None:
    """Make @challenger the @champion if it beats the champion on the same test set (exit 0), else refuse (exit 1)."""
    with _opened_registry(params_file, tracking_uri, model, tagger) as (client, name, settings):
        from hushkit.registry import promote as promote_version

        decision = promote_version(client, name, metric=metric or settings.metric,
                                   min_margin=settings.min_margin if min_margin is None else min_margin,
                                   user=user, reason=reason)
    typer.echo(f"{name}: {decision.message}")
    if decision.status == "refused":
        raise typer.Exit(code=REFUSED)


def rollback(
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, recorded with the rollback."),
    user: Optional[str] = _USER_OPTION,
    model: Optional[str] = _MODEL_OPTION,
    tracking_uri: Optional[str] = _URI_OPTION,
    params_file: Path = _PARAMS_OPTION,
    tagger: bool = _TAGGER_OPTION,
) -> None:
    """Move @champion back to the previous champion (as `hushkit history` shows it)."""
    with _opened_registry(params_file, tracking_uri, model, tagger) as (client, name, _):
        from hushkit.registry import rollback as rollback_champion

        result = rollback_champion(client, name, user=user, reason=reason)
    typer.echo(f"{name}: {result.message}")


def history(
    metric: Optional[str] = typer.Option(None, "--metric", show_default="params promote.metric, else pesq",
                                         help="Test metric to show per version."),
    model: Optional[str] = _MODEL_OPTION,
    tracking_uri: Optional[str] = _URI_OPTION,
    params_file: Path = _PARAMS_OPTION,
    tagger: bool = _TAGGER_OPTION,
) -> None:
    """Every version (architecture, test score, test set, aliases) and every champion move."""
    with _opened_registry(params_file, tracking_uri, model, tagger) as (client, name, settings):
        from hushkit.registry import CHAMPION, MANIFEST_TAG, ROLLED_BACK_TAG, history as champion_history, versions

        metric = metric or settings.metric
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
