"""Sealing a file that arrives as a stream of unknown length, with no plaintext on disk.

An envelope's first chunk holds the content's length, which is unknown
until the whole file has arrived, and the file may be far too large for
memory. So the bytes are first spooled *encrypted*: AES-256-GCM chunks of
64 KiB under a random key that exists only in this process's memory, into
an unnamed file (created and unlinked at once) in the uploads directory.
Once the file has ended, the spool is read back, each chunk authenticated
and decrypted in memory, and the plaintext sealed as an attachment
(``portal.attachment``, path ``server``) into a staging file in the same
directory; ``storage.store`` then moves it into the envelope directory.
Memory stays at a few chunks whatever the size. The key dies with the
spool, so a spool left by a crash (it has no name) is unreadable noise.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal import attachment, envelope
from portal.envelope import CHUNK_SIZE, TAG_SIZE, SealPath
from portal.models import SealedBy
from portal.storage import Staged, fsync_directory
from portal.uploads import STAGING_PREFIX, prepare

NONCE_SIZE = 12


class Spool:
    """An encrypted, unnamed spool file for one incoming file; ``size`` bytes written so far."""

    def __init__(self, directory: Path) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        fd, name = tempfile.mkstemp(prefix=".spool-", dir=directory)
        os.unlink(name)  # no name on disk, ever: gone when closed, even after a crash
        self._file = os.fdopen(fd, "w+b")
        self._pending = bytearray()
        self._chunks = 0
        self.size = 0

    def write(self, data: bytes) -> None:
        """Add ``data``; whole chunks are encrypted and written, the rest waits in memory."""
        self._pending += data
        self.size += len(data)
        while len(self._pending) >= CHUNK_SIZE:
            self._seal(bytes(self._pending[:CHUNK_SIZE]))
            del self._pending[:CHUNK_SIZE]

    def _seal(self, plain: bytes) -> None:
        nonce = self._chunks.to_bytes(NONCE_SIZE, "big")
        self._file.write(self._aead.encrypt(nonce, plain, None))
        self._chunks += 1

    def blocks(self) -> Iterator[bytes]:
        """The spooled bytes again, chunk by chunk, each authenticated before it is given."""
        if self._pending:
            self._seal(bytes(self._pending))
            self._pending.clear()
        self._file.flush()
        self._file.seek(0)
        for counter in range(self._chunks):
            sealed = self._file.read(CHUNK_SIZE + TAG_SIZE)
            yield self._aead.decrypt(counter.to_bytes(NONCE_SIZE, "big"), sealed, None)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def seal_attachment(
    spool: Spool,
    data_dir: Path,
    recipients: Sequence[bytes],
    *,
    name: str,
    media_type: str,
) -> tuple[Staged, attachment.Metadata]:
    """Seal the spooled file as an attachment envelope (path ``server``) in a staging file.

    Returns the staged envelope for ``storage.store`` and the metadata the
    report document lists. On failure nothing is left behind.
    """
    directory = prepare(data_dir)
    encoder = attachment.Encoder(spool.blocks(), spool.size, name=name, media_type=media_type)
    fd, temp = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=directory)
    path = Path(temp)
    try:
        with os.fdopen(fd, "wb") as out:
            header = envelope.seal_stream(encoder, out, recipients, encoder.length, SealPath.SERVER)
            out.flush()
            os.fsync(out.fileno())
        fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return Staged(path, header, SealedBy.SERVER), encoder.metadata
