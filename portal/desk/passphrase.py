"""Passphrases for secret key files: from a file, or asked on the terminal (never on stdin).

Standard input may be the envelope itself, so prompts always go through
``/dev/tty``; with no terminal, the user must give ``--passphrase-file``.
"""

from __future__ import annotations

import getpass
import os
import warnings

from portal.desk.errors import DeskError
from portal.desk.streams import read_text
from portal.keyfile import MIN_PASSPHRASE, check_passphrase

TTY = "/dev/tty"


def from_file(path: str) -> str:
    """The first line of ``path``, without its line ending."""
    first = read_text(path, "the passphrase file").split("\n", 1)[0]
    return first.removesuffix("\r")


def ask(prompt: str) -> str:
    """Ask on the controlling terminal with echo off; never falls back to standard input."""
    try:
        os.close(os.open(TTY, os.O_RDWR | os.O_NOCTTY))
    except OSError:
        hint = "Put the passphrase on the first line of a file and give --passphrase-file FILE."
        raise DeskError("there is no terminal to ask for the passphrase on", hint) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", getpass.GetPassWarning)
            return getpass.getpass(prompt)
    except (EOFError, getpass.GetPassWarning):
        hint = "Type the passphrase and press Enter, or use --passphrase-file FILE."
        raise DeskError("no passphrase was entered", hint) from None


def ask_new() -> str:
    """Ask twice for a new passphrase and check it is long enough and typed the same."""
    first = ask(f"New passphrase ({MIN_PASSPHRASE} characters or more): ")
    check_passphrase(first)
    if ask("The same passphrase again: ") != first:
        hint = "Run keygen again and type the same passphrase both times."
        raise DeskError("the two passphrases differ", hint)
    return first
