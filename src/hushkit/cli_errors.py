"""Exit codes and one-line errors shared by the `hushkit` commands (hushkit.cli, hushkit.cli_registry)."""
from __future__ import annotations

import contextlib

import typer

from hushkit.errors import MissingExtraError

# Exit codes, so CI or an orchestrator can branch: 0 done, 1 refused by the rules (`promote`), 2 could not act.
REFUSED, ERROR = 1, 2


@contextlib.contextmanager
def one_line_errors(*errors: type[Exception]):
    """`errors` (a bad file, path, setting or store: what a user can act on) and a missing optional extra as one
    `error:` line and exit 2, not a traceback."""
    try:
        yield
    except (*errors, MissingExtraError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=ERROR)
