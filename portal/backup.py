"""``portal backup -o FILE``: the database rows and the ciphertext store in one verified file.

There is no plaintext on the server, so a backup holds ciphertext and the
rows the brief allows, nothing else. The file is an uncompressed tar
(ciphertext does not compress) with its members in a fixed order, each with
time 0, mode 0600 and no owner, so that the file carries no time of day
beyond what the rows hold:

- ``portal-backup/MANIFEST``: JSON with the format version, the schema
  revision, each table's member and row count, and the path, size and
  SHA-256 of every member that follows;
- ``portal-backup/MANIFEST.hmac``: HMAC-SHA256 of the manifest under a key
  derived from ``PORTAL_SECRET_KEY`` (which a restore needs anyway: lookup
  digests and sealed TOTP secrets depend on it), so that a backup changed by
  whoever held it is refused, not restored;
- ``portal-backup/tables/<table>.jsonl``: one JSON object per row, in
  primary-key order (never arrival order), bytes in base64, days as ISO dates;
- ``portal-backup/files/<path>``: every file under the data directory but the
  SQLite database and temporary files.

The files are listed and digested first, then the rows are read; a
submission or reply whose file is not in the backup (purged or stored while
the backup ran) fails the backup, which is then simply run again. See
``portal.restore`` for the other direction.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import BigInteger, Boolean, Column, Date, Enum, Integer, LargeBinary, String, Table
from sqlalchemy import select as sql_select

from portal import migrate
from portal.config import DATABASE_NAME, Config
from portal.db import Database
from portal.models import Base, Reply, Submission
from portal.storage import ENVELOPE_DIR, REPLY_DIR, SUFFIX, fsync_directory

FORMAT = "portal-backup-1"
ROOT = "portal-backup"
MANIFEST = f"{ROOT}/MANIFEST"
MAC = f"{ROOT}/MANIFEST.hmac"
BLOCK = 1 << 20
MAC_LABEL = b"portal backup manifest v1"


class BackupError(Exception):
    """Nothing usable was written (or restored); ``hint`` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Entry:
    path: str  # the member's name without the ROOT prefix
    size: int
    sha256: str


def mac_key(secret: bytes) -> bytes:
    """The key that authenticates a backup's manifest, derived from the portal's secret."""
    return hmac.new(secret, MAC_LABEL, hashlib.sha256).digest()


def database_files(config: Config) -> set[Path]:
    """The SQLite database and its companions when they live in the data directory."""
    url = config.database_url
    if not url.startswith("sqlite:///"):
        return set()
    main = Path(url.removeprefix("sqlite:///")).resolve()
    return {main, *(main.with_name(main.name + s) for s in ("-journal", "-wal", "-shm"))}


def data_files(config: Config) -> Iterator[tuple[str, Path]]:
    """Every file to back up, as (relative POSIX path, path), sorted; refuses odd entries."""
    skip = database_files(config) | {(config.data_dir / DATABASE_NAME).resolve()}
    for path in sorted(config.data_dir.rglob("*")):
        relative = path.relative_to(config.data_dir).as_posix()
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            raise BackupError(
                f"{relative} in the data directory is not a plain file or folder",
                "Remove it (the portal never makes links or special files there).",
            )
        if path.is_file() and path.resolve() not in skip and not path.name.startswith("."):
            yield relative, path


def file_digest(path: Path) -> Entry:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
            size += len(block)
    return Entry("", size, digest.hexdigest())


def encode_value(column: Column[Any], value: object) -> object:
    """A column value as JSON; refuses a type the format does not know (a time of day)."""
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, Enum):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(kind, Date) and type(value) is dt.date:
        return value.isoformat()
    if isinstance(kind, LargeBinary):
        return base64.b64encode(bytes(value)).decode()  # type: ignore[call-overload]
    if isinstance(kind, Integer | BigInteger | String | Boolean):
        return value
    raise BackupError(
        f"column {column.table.name}.{column.name} has a type backups do not carry",
        "Update portal/backup.py for the new column type.",
    )


def dump_tables(db: Database) -> dict[str, list[dict[str, object]]]:
    """Every row of every table, in primary-key order, in one read transaction."""
    dumped: dict[str, list[dict[str, object]]] = {}
    with db.engine.connect() as conn, conn.begin():
        for table in Base.metadata.sorted_tables:
            query = sql_select(table).order_by(*table.primary_key.columns)
            dumped[table.name] = [
                {c.name: encode_value(c, row._mapping[c.name]) for c in table.columns}
                for row in conn.execute(query)
            ]
    return dumped


def table_member(name: str) -> str:
    return f"tables/{name}.jsonl"


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in rows)


def require_files_of_rows(tables: dict[str, Any], files: set[str]) -> None:
    """Every stored submission and reply has its file in ``files``."""
    wanted = {
        Submission.__tablename__: ENVELOPE_DIR,
        Reply.__tablename__: REPLY_DIR,
    }
    for table, folder in wanted.items():
        for row in tables.get(table, []):
            if f"files/{folder}/{row['id']}{SUFFIX}" not in files:
                raise BackupError(
                    f"a row of {table} has no file in the data directory",
                    "Something was stored or purged while the backup ran: run it again."
                    " If it fails again, run `portal doctor`.",
                )


def manifest_bytes(revision: str, tables: dict[str, Entry], rows: dict[str, int],
                   files: list[Entry]) -> bytes:  # fmt: skip
    document = {
        "format": FORMAT,
        "revision": revision,
        "tables": [{"name": n, "rows": rows[n], "member": e.path} for n, e in tables.items()],
        "members": [
            {"path": e.path, "size": e.size, "sha256": e.sha256} for e in (*tables.values(), *files)
        ],
    }
    return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"{ROOT}/{name}" if not name.startswith(ROOT) else name)
    info.size, info.mode, info.mtime = size, 0o600, 0
    return info


class _Checked(io.RawIOBase):
    """Reads a file for the tar while digesting it again, so a change under way is caught."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.digest, self.size = fh, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def _write(out: BinaryIO, manifest: bytes, key: bytes, members: list[tuple[Entry, object]]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(MANIFEST, len(manifest)), io.BytesIO(manifest))
        mac = hmac.new(key, manifest, hashlib.sha256).hexdigest().encode()
        tar.addfile(_info(MAC, len(mac)), io.BytesIO(mac))
        for entry, source in members:
            if isinstance(source, bytes):
                tar.addfile(_info(entry.path, entry.size), io.BytesIO(source))
                continue
            assert isinstance(source, Path)  # noqa: S101 -- the two kinds built in ``create``
            with source.open("rb") as fh:
                checked = _Checked(fh)
                tar.addfile(_info(entry.path, entry.size), checked)
            if checked.digest.hexdigest() != entry.sha256 or checked.size != entry.size:
                raise BackupError(
                    f"{entry.path} changed while the backup ran", "Run the backup again."
                )


def create(config: Config, output: Path) -> tuple[int, int]:
    """Write a backup of ``config``'s database and data directory to ``output``.

    Returns the number of rows and files. Refuses to overwrite ``output``;
    on any error nothing is left at ``output``.
    """
    if output.exists():
        raise BackupError(f"{output} exists already", "Choose a new file name.")
    db = Database(config.database_url)
    try:
        revision = migrate.revision_of(db.engine)
        if revision != migrate.head():
            raise BackupError(
                "the database is not at the newest revision", "Run `portal db upgrade` first."
            )
        files = [(f"files/{rel}", path) for rel, path in data_files(config)]
        entries = [Entry(name, *_sized(path)) for name, path in files]
        tables = dump_tables(db)
    finally:
        db.dispose()
    require_files_of_rows(tables, {e.path for e in entries})
    dumps = {name: jsonl(rows) for name, rows in tables.items()}
    table_entries = {
        n: Entry(table_member(n), len(d), hashlib.sha256(d).hexdigest()) for n, d in dumps.items()
    }
    manifest = manifest_bytes(str(revision), table_entries,
                              {n: len(r) for n, r in tables.items()}, entries)  # fmt: skip
    members: list[tuple[Entry, object]] = [(table_entries[n], dumps[n]) for n in dumps]
    members += [(e, path) for e, (_, path) in zip(entries, files, strict=True)]
    _publish(output, manifest, mac_key(config.require_secret()), members)
    return sum(len(r) for r in tables.values()), len(entries)


def _sized(path: Path) -> tuple[int, str]:
    found = file_digest(path)
    return found.size, found.sha256


def _publish(
    output: Path, manifest: bytes, key: bytes, members: list[tuple[Entry, object]]
) -> None:
    fd, temp = tempfile.mkstemp(prefix=".backup-", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            _write(out, manifest, key, members)
            out.flush()
            os.fsync(out.fileno())
        os.link(temp, output)
    finally:
        os.unlink(temp)
    fsync_directory(output.parent)


def table_of(name: str) -> Table:
    """The model table called ``name``."""
    return Base.metadata.tables[name]
