"""``portal restore FILE``: a backup (``portal.backup``) into an empty portal, verified first.

The whole file is read and checked before anything is written: the
manifest's HMAC under the portal's secret, its format and schema revision
(a backup is restored by the version of the portal that made it; upgrade
afterwards), then every member in order against the manifest's size and
SHA-256, with nothing missing, repeated or extra, and every row well formed.
A restore goes only into an empty data directory and an empty database
(no rows; the tables are made when there are none); anything else is
refused. Then the files are written durably (each digested again as it is
written) and the rows inserted in one transaction; on any failure the files
written are removed and nothing stays half restored.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Date, Enum, LargeBinary, func, inspect, select

from portal import migrate, storage
from portal.backup import (
    BLOCK,
    FORMAT,
    MAC,
    MANIFEST,
    ROOT,
    BackupError,
    Entry,
    data_files,
    mac_key,
    require_files_of_rows,
    table_of,
)
from portal.config import Config
from portal.db import Database
from portal.models import Base
from portal.strictjson import StrictJSONError, loads

SAFE_PATH = re.compile(r"files/[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_MANIFEST = 64 << 20
MAX_TABLE = 1 << 30
ROWS_PER_INSERT = 500


def refused(message: str) -> BackupError:
    return BackupError(
        f"the backup is refused and nothing was restored: {message}",
        "Use an intact copy of the backup, made by this version of the portal, with the"
        " same PORTAL_SECRET_KEY.",
    )


@dataclass(frozen=True)
class Plan:
    revision: str
    tables: dict[str, str]  # table name -> member path
    members: list[Entry]


def _read_small(tar: tarfile.TarFile, name: str, limit: int) -> bytes:
    member = tar.next()
    if member is None or member.name != name or not member.isfile() or member.size > limit:
        raise refused(f"{name} is missing or misplaced")
    fh = tar.extractfile(member)
    assert fh is not None  # noqa: S101 -- a regular file always has one
    return fh.read()


def _plan(manifest: bytes) -> Plan:
    try:
        doc = loads(manifest.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise refused("it is not a portal backup of a format this version reads")
        members = [Entry(m["path"], m["size"], m["sha256"]) for m in doc["members"]]
        tables = {t["name"]: t["member"] for t in doc["tables"]}
        revision = doc["revision"]
    except (UnicodeDecodeError, StrictJSONError, KeyError, TypeError) as err:
        raise refused(f"its manifest is malformed ({type(err).__name__})") from None
    paths = [m.path for m in members]
    if len(set(paths)) != len(paths) or set(tables) != set(Base.metadata.tables):
        raise refused("its manifest lists members twice or other tables than this portal's")
    for m in members:
        is_table = m.path in tables.values()
        if not (is_table or SAFE_PATH.fullmatch(m.path)) or ".." in m.path.split("/"):
            raise refused("its manifest names a file outside the data directory")
        if type(m.size) is not int or m.size < 0 or not SHA256.fullmatch(str(m.sha256)):
            raise refused("its manifest has a malformed size or digest")
    if revision != migrate.head():
        raise refused(f"it was made at schema revision {revision}, this portal is at"
                      f" {migrate.head()}")  # fmt: skip
    return Plan(revision, tables, members)


@contextmanager
def _opened(path: Path, key: bytes) -> Iterator[tuple[tarfile.TarFile, Plan]]:
    try:
        # ``portal backup`` writes whole tar records; a shorter file was cut, even if only its
        # final zero padding is missing (which the members' digests would not notice).
        if path.stat().st_size % tarfile.RECORDSIZE:
            raise refused("it is cut short (it does not end on a whole tar record)")
        with tarfile.open(path, mode="r|") as tar:
            manifest = _read_small(tar, MANIFEST, MAX_MANIFEST)
            mac = _read_small(tar, MAC, 64)
            wanted = hmac.new(key, manifest, hashlib.sha256).hexdigest().encode()
            if not hmac.compare_digest(mac, wanted):
                raise refused("its manifest is not authentic (changed, or another secret key)")
            yield tar, _plan(manifest)
    except (tarfile.TarError, EOFError) as err:
        raise refused(f"it is not a complete backup file ({type(err).__name__})") from None


def _members(tar: tarfile.TarFile, plan: Plan) -> Iterator[tuple[Entry, IO[bytes]]]:
    for entry in plan.members:
        member = tar.next()
        if member is None or member.name != f"{ROOT}/{entry.path}" or not member.isfile():
            raise refused(f"{entry.path} is missing, misplaced or not a file")
        if member.size != entry.size:
            raise refused(f"{entry.path} has another size than the manifest says")
        fh = tar.extractfile(member)
        assert fh is not None  # noqa: S101 -- a regular file always has one
        yield entry, fh
    if tar.next() is not None:
        raise refused("it holds members its manifest does not list")


def _copy(entry: Entry, fh: IO[bytes], out: IO[bytes] | None, keep: bool = False) -> bytes:
    """Digest a member while copying it to ``out``; its bytes when ``keep`` (a table)."""
    digest, kept = hashlib.sha256(), bytearray()
    if keep and entry.size > MAX_TABLE:
        raise refused(f"{entry.path} is larger than a table dump can be")
    while block := fh.read(BLOCK):
        digest.update(block)
        if out is not None:
            out.write(block)
        if keep:
            kept += block
    if digest.hexdigest() != entry.sha256:
        raise refused(f"{entry.path} does not match its digest")
    return bytes(kept)


def decode_row(table_name: str, line: bytes) -> dict[str, Any]:
    """One row from its JSON line, each value checked against its column's type."""
    table = table_of(table_name)
    try:
        raw = loads(line.decode("utf-8"))
        if not isinstance(raw, dict) or set(raw) != {c.name for c in table.columns}:
            raise ValueError("other columns")
        return {c.name: _decode(c.type, raw[c.name]) for c in table.columns}
    except (UnicodeDecodeError, StrictJSONError, ValueError, TypeError, binascii.Error):
        raise refused(f"a row of {table_name} is malformed") from None


def _decode(kind: object, value: object) -> object:
    if value is None:
        return None
    if isinstance(kind, Enum) and kind.enum_class is not None:
        return kind.enum_class(value)
    if isinstance(kind, Date):
        return dt.date.fromisoformat(str(value))
    if isinstance(kind, LargeBinary):
        return base64.b64decode(str(value), validate=True)
    return value


def check(config: Config, path: Path) -> tuple[Plan, dict[str, list[dict[str, Any]]]]:
    """Read and verify the whole backup; return its plan and rows. Writes nothing."""
    rows: dict[str, list[dict[str, Any]]] = {}
    with _opened(path, mac_key(config.require_secret())) as (tar, plan):
        by_member = {member: name for name, member in plan.tables.items()}
        for entry, fh in _members(tar, plan):
            data = _copy(entry, fh, None, keep=entry.path in by_member)
            if entry.path in by_member:
                name = by_member[entry.path]
                rows[name] = [decode_row(name, line) for line in data.splitlines()]
    require_files_of_rows(rows, {m.path for m in plan.members})
    return plan, rows


def require_empty(config: Config, db: Database) -> None:
    """Refuse unless the data directory holds no file and the database no row."""
    if config.data_dir.exists() and any(True for _ in data_files(config)):
        raise BackupError("the data directory is not empty", "Restore into a new, empty one.")
    revision = migrate.revision_of(db.engine)
    if revision is None:
        ours = set(Base.metadata.tables) & set(inspect(db.engine).get_table_names())
        if ours:
            raise BackupError("the database has tables but no revision",
                              "Restore into a new, empty database.")  # fmt: skip
        return
    if revision != migrate.head():
        raise BackupError("the database is not empty (it has an older schema)",
                          "Restore into a new, empty database.")  # fmt: skip
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if conn.scalar(select(func.count()).select_from(table)):
                raise BackupError(f"the database is not empty ({table.name} has rows)",
                                  "Restore into a new, empty database.")  # fmt: skip


def _write_files(config: Config, path: Path, key: bytes) -> list[Path]:
    """Write every file of the backup (digested again on the way); remove them on failure."""
    written: list[Path] = []
    try:
        with _opened(path, key) as (tar, plan):
            tables = set(plan.tables.values())
            for entry, fh in _members(tar, plan):
                if entry.path in tables:
                    _copy(entry, fh, None)
                    continue
                target = config.data_dir / entry.path.removeprefix("files/")
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with _temporary(target) as out:
                    _copy(entry, fh, out)
                written.append(target)
    except BaseException:
        for target in written:
            storage.remove_durably(target)
        raise
    return written


@contextmanager
def _temporary(target: Path) -> Iterator[IO[bytes]]:
    """A file that becomes ``target`` durably once complete (see ``storage.write_durably``)."""
    temp = target.with_name(storage.TEMP_PREFIX + target.name)
    with temp.open("xb") as out:
        try:
            yield out
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            temp.unlink()
            raise
    try:
        os.link(temp, target)
    finally:
        temp.unlink()
    storage.fsync_directory(target.parent)


def _insert(conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    for table in Base.metadata.sorted_tables:
        found = rows.get(table.name, [])
        for i in range(0, len(found), ROWS_PER_INSERT):
            conn.execute(table.insert(), found[i : i + ROWS_PER_INSERT])
        if conn.dialect.name == "postgresql":
            _advance_sequences(conn, table.name)


def _advance_sequences(conn: Connection, table_name: str) -> None:
    """PostgreSQL does not move a serial column's sequence for explicit ids."""
    for column in table_of(table_name).primary_key.columns:
        if column.autoincrement not in (True, "auto") or column.type.python_type is not int:
            continue
        highest = select(func.max(column)).scalar_subquery()
        sequence = func.pg_get_serial_sequence(table_name, column.name)
        conn.execute(select(func.setval(sequence, func.coalesce(highest, 1), highest.is_not(None))))


def restore(config: Config, path: Path) -> tuple[int, int]:
    """Verify ``path`` whole, then restore it into the empty portal of ``config``.

    Returns the number of rows and files restored; raises :class:`BackupError`
    (nothing restored) otherwise.
    """
    plan, rows = check(config, path)
    storage.prepare(config.data_dir)
    db = Database(config.database_url)
    try:
        require_empty(config, db)
        migrate.upgrade(config.database_url, plan.revision)
        written = _write_files(config, path, mac_key(config.require_secret()))
        try:
            with db.engine.begin() as conn:
                _insert(conn, rows)
        except BaseException:
            for target in written:
                storage.remove_durably(target)
            raise
    finally:
        db.dispose()
    return sum(len(r) for r in rows.values()), len(written)
