"""User-facing errors.

Every problem a user can fix (a bad argument, a malformed table, a corrupt cache) raises
:class:`BiornnError` with a one-line message that names the bad value and says how to fix it.
The command line prints that line and exits with status 2, without a traceback.
"""

from __future__ import annotations


class BiornnError(ValueError):
    """A user error: bad input, a bad file or a bad option. The message is one line."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`BiornnError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BiornnError(message)
