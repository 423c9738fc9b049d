"""The command-line shell every stage shares: read the params file and check all of it against the schema (a typo
anywhere fails every stage before any work), run, turn known errors into one clear line."""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from hushkit.config import validate_params
from hushkit.errors import UserError
from hushkit.params import load_params


def stage_main(
    stage: str, run: Callable[..., Any], argv: list[str] | None = None, sections: dict[str, str] | None = None,
    section: str | None = None,
) -> None:
    """`run(params[section], **paths)` (`section`: the stage's own params section, named like the stage unless
    given): each keyword-only parameter of `run` becomes a --path option (a plain string option if
    annotated `str`), except those named in `sections` (keyword → params section), which receive that other params
    section (e.g. the shared `mlflow`); the section name "*" passes the whole params file."""
    sections = sections or {}
    section = section or stage
    parser = argparse.ArgumentParser(prog=f"python -m hushkit.stages.{stage}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    path_args = [p for p in inspect.signature(run).parameters.values() if p.kind is p.KEYWORD_ONLY]
    for param in path_args:
        if param.name in sections:
            continue
        option = "--" + param.name.replace("_", "-")
        kind = str if param.annotation in (str, "str") else Path  # paths unless annotated as a plain string
        parser.add_argument(option, dest=param.name, type=kind, required=param.default is inspect.Parameter.empty,
                            default=None if param.default is inspect.Parameter.empty else param.default)
    args = parser.parse_args(argv)
    kwargs = {p.name: getattr(args, p.name) for p in path_args if p.name not in sections}
    try:
        params = load_params(args.params)
        try:
            validate_params(params)
        except ValueError as err:
            raise ValueError(f"{args.params}: {err}") from None
        if section not in params:
            raise ValueError(f"{args.params}: no '{section}' section")
        kwargs.update({name: params if key == "*" else params.get(key, {}) for name, key in sections.items()})
        run(params[section], **kwargs)
    except Exception as err:  # noqa: BLE001 - a stage failure must be one readable line, not a traceback
        if isinstance(err, (UserError, ValueError, FileNotFoundError)):
            print(f"{stage}: {err}", file=sys.stderr)
            sys.exit(1)
        raise
