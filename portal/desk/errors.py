"""The desk's own error type: a message for ``portal-desk: error:`` and a hint."""

from __future__ import annotations


class DeskError(Exception):
    """A failure the user can act on; ``str(err)`` says what, ``err.hint`` what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint
