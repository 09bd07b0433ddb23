"""Inputs and outputs of ``portal-desk``: files, standard streams, and the checks around them.

``-`` or no name means standard input or output. Pipes are read into memory
only when a command needs the size up front (seal) or two passes (decrypt to
standard output), and then only up to :data:`MEMORY_CAP`.
"""

from __future__ import annotations

import errno
import io
import os
import select
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from portal.desk.errors import DeskError
from portal.desk.output import same_file

MEMORY_CAP = 256 << 20
MAX_TEXT_FILE = 1 << 20
STDIN = "standard input"


@dataclass
class Source:
    """An open input: ``name`` is for messages, ``stat`` is ``None`` when unknown."""

    stream: BinaryIO
    name: str
    stat: os.stat_result | None
    owned: bool

    def close(self) -> None:
        if self.owned:
            self.stream.close()

    @property
    def regular(self) -> bool:
        return self.stat is not None and stat.S_ISREG(self.stat.st_mode)


def open_source(arg: str | None, terminal_ok: bool) -> Source:
    """Open the input file ``arg`` (standard input for ``None`` or ``-``)."""
    if arg is None or arg == "-":
        stream = sys.stdin.buffer
        if stream.isatty() and not terminal_ok:
            hint = "Give the envelope's file name, or redirect it: portal-desk ... < FILE"
            raise DeskError("refusing to read an envelope from the terminal", hint)
        info = _fstat(stream)
        if info is not None and not stat.S_ISREG(info.st_mode):
            reader = io.BufferedReader(_WakingReader(stream.fileno()), 1 << 20)
            return Source(reader, STDIN, info, owned=False)
        return Source(stream, STDIN, info, owned=False)
    try:
        stream = open(arg, "rb")  # noqa: SIM115 (closed by Source.close)
    except OSError as err:
        raise os_error(err, f"cannot read {arg}") from None
    return Source(stream, arg, _fstat(stream), owned=True)


class _WakingReader(io.RawIOBase):
    """Reads a pipe, waking every quarter second so that a pending signal handler runs.

    A SIGTERM that lands while Python is between system calls only runs its
    handler at the next bytecode; a plain read on a stalled pipe would block
    until more data came, leaving the partial plaintext file on disk.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not select.select([self._fd], [], [], 0.25)[0]:
            pass
        return os.readv(self._fd, [buffer])


def read_capped(stream: BinaryIO, name: str) -> bytes:
    """All of ``stream`` in memory, refusing more than :data:`MEMORY_CAP` bytes."""
    data = bytearray()
    while block := stream.read(min(1 << 20, MEMORY_CAP + 1 - len(data))):
        data += block
        if len(data) > MEMORY_CAP:
            cap = f"{MEMORY_CAP >> 20} MiB" if MEMORY_CAP >= 1 << 20 else f"{MEMORY_CAP} bytes"
            hint = "Give the file's name instead of piping it in, or (for decrypt) use -o FILE."
            raise DeskError(f"{name} holds more than {cap}", hint)
    return bytes(data)


def sized(source: Source) -> tuple[BinaryIO, int]:
    """The input with its length, which sealing needs before it starts."""
    if source.regular and source.stat is not None:
        return source.stream, source.stat.st_size - source.stream.tell()
    data = read_capped(source.stream, source.name)
    return io.BytesIO(data), len(data)


def rewindable(source: Source) -> BinaryIO:
    """The input in a form that can be read twice (files seek; pipes go to memory)."""
    if source.regular and source.stream.seekable():
        return source.stream
    return io.BytesIO(read_capped(source.stream, source.name))


def read_text(path: str, what: str) -> str:
    """A small UTF-8 text file (a key entry, a manifest, a passphrase)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TEXT_FILE + 1)
    except OSError as err:
        raise os_error(err, f"cannot read {what} {path}") from None
    if len(data) > MAX_TEXT_FILE:
        raise DeskError(f"{what} {path} is larger than 1 MiB", f"Check that {path} is {what}.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DeskError(f"{what} {path} is not UTF-8 text", f"Check that it is {what}.") from None


def protect(path: str, what: str) -> tuple[str, os.stat_result] | None:
    """A file that no output may overwrite, with its identity (``None`` if it cannot be read)."""
    try:
        return what, os.stat(path)
    except OSError:
        return None


def check_target(
    out: str | None, protected: Sequence[tuple[str, os.stat_result] | None], force: bool
) -> None:
    """Refuse an output that is an input or key file, a directory, or exists (without --force)."""
    target = _stat_output(out)
    for item in protected:
        if item is not None and target is not None and same_file(target, item[1]):
            hint = "Write the output to a different file."
            raise DeskError(f"refusing to overwrite {item[0]}: the output is the same file", hint)
    if out is None:
        return
    if os.path.isdir(out):
        raise DeskError(f"{out} is a directory", "Give -o the name of a file to create.")
    if os.path.lexists(out) and not force:
        hint = "Choose another output name, or add --force to replace it."
        raise DeskError(f"{out} already exists", hint)


def check_terminal(plaintext: bool, allowed: bool) -> None:
    """Refuse to write binary envelopes, or plaintext unless allowed, to a terminal."""
    if not sys.stdout.isatty():
        return
    if not plaintext:
        hint = "Redirect the output to a file, or use -o FILE."
        raise DeskError("refusing to write an envelope (binary data) to the terminal", hint)
    if not allowed:
        hint = "Use -o FILE, or add --terminal to show the plaintext on this screen."
        raise DeskError("refusing to write the decrypted plaintext to the terminal", hint)


def output_name(arg: str | None) -> str | None:
    """The -o file name, or ``None`` for standard output."""
    return None if arg is None or arg == "-" else arg


HINTS = {
    errno.ENOENT: "Check the file name and that its directory exists.",
    errno.EACCES: "Check the file's permissions (ls -l).",
    errno.EPERM: "Check the file's permissions (ls -l).",
    errno.EISDIR: "Give the name of a file, not a directory.",
    errno.ENOTDIR: "Check the path: part of it is not a directory.",
    errno.ENOSPC: "Free some disk space, then run the command again.",
    errno.EROFS: "The disk is read-only: write somewhere else.",
    errno.EEXIST: "Choose another output name, or add --force to replace it.",
}


def os_error(err: OSError, doing: str) -> DeskError:
    """A :class:`DeskError` for an OSError, with a hint matched to its errno."""
    reason = err.strerror or str(err)
    hint = HINTS.get(err.errno or 0, "Check the file name and try again.")
    return DeskError(f"{doing}: {reason}" if doing else reason, hint)


def _fstat(stream: BinaryIO) -> os.stat_result | None:
    try:
        return os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


def _stat_output(out: str | None) -> os.stat_result | None:
    if out is None:
        return _fstat(sys.stdout.buffer) if hasattr(sys.stdout, "buffer") else None
    try:
        return os.stat(out)
    except OSError:
        return None
