"""Logging that names no submitter: no address, user agent, time, path or field.

The application logs only what operators need to fix it: start-up
problems, and errors with their type and stack frames but never their
message (a message could quote a form field or a database parameter). No
line carries a timestamp, since the time of an error can be the time of a
submission; request lines are never logged (see ``devserver``).
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import TextIO

from flask import Flask

FORMAT = "portal: %(levelname)s: %(name)s: %(message)s"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (as ``logging.lastResort`` does)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure() -> None:
    """Send the portal's log to standard error in a format with no time in it."""
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Werkzeug would log every request line, with the client's address.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def frames(exc_info: ExcInfo) -> str:
    """Where an error happened: its type and stack frames, without its message."""
    kind, _, tb = exc_info
    name = kind.__name__ if kind is not None else "error"
    return f"{name} at\n" + "".join(traceback.format_tb(tb)).rstrip()


class SourceFlask(Flask):
    """Flask, logging an unhandled error by type and frames only."""

    def log_exception(self, exc_info: ExcInfo) -> None:
        self.logger.error("unhandled %s", frames(exc_info))
