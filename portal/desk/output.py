"""Output files that appear whole or not at all.

The desk never leaves partial plaintext behind. It writes into a temporary
file beside the destination (same directory, so the last step is a link or a
rename, never a copy), created with mode 0600, fsyncs it, and only then gives
it the destination's name. On any failure, Ctrl-C included, the temporary file
is deleted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from types import TracebackType
from typing import BinaryIO

TEMP_PREFIX = ".portal-desk-"
TEMP_SUFFIX = ".tmp"
# Filesystems without hard links (FAT and exFAT on USB sticks, some FUSE mounts).
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


class AtomicOutput:
    """``with AtomicOutput(path) as fh:`` writes ``fh`` to ``path`` only if the block succeeds.

    An existing ``path`` is never replaced (``FileExistsError``) unless
    ``overwrite`` is true. OSErrors name ``path``, not the temporary file.
    A name known only once the content has been checked (an attachment's)
    may be given inside the block by setting ``path`` (and ``overwrite``)
    to a name in the same directory.
    """

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.path = os.fspath(path)
        self._tmp_for = self.path
        self.overwrite = overwrite
        self._tmp: str | None = None
        self._file: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        directory = os.path.dirname(self.path) or "."
        try:
            fd, self._tmp = tempfile.mkstemp(TEMP_SUFFIX, TEMP_PREFIX, directory)
            os.fchmod(fd, 0o600)
        except OSError as err:
            self._discard()
            raise OSError(err.errno, err.strerror, self.path) from None
        self._file = os.fdopen(fd, "wb")
        return self._file

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            self._commit()
        except BaseException:
            self._discard()
            raise

    def _commit(self) -> None:
        if self._file is None or self._tmp is None:
            raise RuntimeError("AtomicOutput used outside its with block")
        if os.path.dirname(self.path) != os.path.dirname(self._tmp_for):
            raise RuntimeError("AtomicOutput can only rename within its directory")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            publish(self._tmp, self.path, self.overwrite)
        except OSError as err:
            raise type(err)(err.errno, err.strerror, self.path) from None
        self._tmp = None
        sync_directory(os.path.dirname(self.path) or ".")

    def _discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None


def publish(tmp: str, path: str, overwrite: bool) -> None:
    """Give the finished file ``tmp`` the name ``path``; without ``overwrite``, never replace.

    A hard link fails atomically if ``path`` exists. Where links are not
    supported, an empty placeholder created with O_EXCL reserves the name and
    a rename then fills it.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def sync_directory(directory: str) -> None:
    """Make a new name in ``directory`` durable (best effort: not every system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two stats are the same regular file (hard links and symlinks included)."""
    regular = stat.S_ISREG(a.st_mode) and stat.S_ISREG(b.st_mode)
    return regular and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
