"""The one base class of errors a user fixes by changing their input, params or data (not by reading a traceback):
stages and commands print such an error as one line naming the file and the problem."""
from __future__ import annotations


class UserError(Exception):
    """Bad input: a file, a setting or a download that cannot be used as it is; the message says which and why."""
