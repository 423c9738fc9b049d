"""The one base class of errors a user fixes by changing their input, params or data (not by reading a traceback):
stages and commands print such an error as one line naming the file and the problem."""
from __future__ import annotations


class UserError(Exception):
    """Bad input: a file, a setting or a download that cannot be used as it is; the message says which and why."""


class MissingExtraError(UserError, ImportError):
    """A feature whose packages come with an optional extra of hushkit that is not installed; the message names the
    feature, the missing package and the `pip install 'hushkit[EXTRA]'` that adds it."""


def import_extra(module: str, extra: str, needed_for: str):
    """`module` imported, or MissingExtraError when it (or the package it belongs to) is not installed. A module that
    is installed but fails to import for another reason raises its own error."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if not err.name or not (module == err.name or module.startswith(err.name + ".")):
            raise
        raise MissingExtraError(f"{needed_for} needs the package {err.name}, which is not installed: "
                                f"pip install 'hushkit[{extra}]'") from None
