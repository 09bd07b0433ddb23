"""Helpers for the full loop in Chromium: the two servers, a staff account, the desk.

Everything here runs the project's real programs: `portal serve source` and
`portal serve staff` as subprocesses on 127.0.0.1 (stopped afterwards),
`portal staff add` for the account, `portal-desk` for the desk. A TOTP code
is computed from the provisioning URI the command printed, as an
authenticator app would; the servers check it against the real clock, so a
code is always taken from the current or the next time step (both inside the
servers' window) and never from a step already used.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from flask import Flask
from harness import BIN
from source_fixtures import wait_until_serving
from sqlalchemy import MetaData, create_engine, select
from werkzeug.serving import make_server

from portal import staffauth
from portal.config import PROJECT_ROOT
from portal.source.devserver import QuietRequestHandler

STAFF_PASSWORD = "loop test staff password, long enough"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(interface: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """`portal serve INTERFACE` on 127.0.0.1 and a free port; yields its URL, then stops it."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BIN / "portal", "serve", interface, "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        )  # fmt: skip
    try:
        wait_until_serving(proc, port, log, f"serving the {interface} interface".encode())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def serving_in_thread(app: Flask) -> Iterator[str]:
    """``app`` served on 127.0.0.1 from a thread of this process (so that a test's clock,
    ``staffauth.now`` replaced, is the server's clock too); stopped afterwards."""
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler
    )  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def portal(env: dict[str, str], *args: str) -> str:
    """Run the server's command line; its standard output (the test fails if it fails)."""
    done = subprocess.run([BIN / "portal", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Authenticator:
    """An authenticator app holding one account's TOTP secret."""

    secret: bytes
    last_step: int | None = None

    @classmethod
    def from_uri(cls, uri: str) -> Authenticator:
        parsed = urlparse(uri)
        assert parsed.scheme == "otpauth" and parsed.netloc == "totp", uri
        query = parse_qs(parsed.query)
        assert query["algorithm"] == ["SHA1"] and query["digits"] == ["6"], uri
        assert query["period"] == [str(staffauth.TOTP_STEP)], uri
        text = query["secret"][0]
        return cls(base64.b32decode(text + "=" * (-len(text) % 8)))

    def code(self) -> str:
        """A code the server accepts now: of the current or the next step, never one used."""
        while True:
            current = int(time.time()) // staffauth.TOTP_STEP
            step = current if self.last_step is None else max(current, self.last_step + 1)
            if step <= current + staffauth.TOTP_WINDOW:
                break
            time.sleep(max(0.0, (step - 1) * staffauth.TOTP_STEP - time.time()) + 0.05)
        self.last_step = step
        return staffauth.code_at(self.secret, step * staffauth.TOTP_STEP)


@dataclass(frozen=True)
class NewAccount:
    name: str
    enrolment_secret: str
    authenticator: Authenticator


def add_staff(env: dict[str, str], name: str) -> NewAccount:
    """`portal staff add NAME`, read as the operator reads it."""
    printed = portal(env, "staff", "add", name)
    lines = printed.splitlines()
    heading = lines.index(f"one-time enrolment secret for {name} (shown only now):")
    enrolment = lines[heading + 1].strip()
    (uri,) = re.findall(r"^\s+(otpauth://\S+)$", printed, re.MULTILINE)
    return NewAccount(name, enrolment, Authenticator.from_uri(uri))


def desk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `portal-desk`; the test fails with its error lines unless it exits 0."""
    done = subprocess.run(
        [BIN / "portal-desk", *map(str, args)], capture_output=True, text=True, cwd=PROJECT_ROOT
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


Rows = dict[str, list[dict[str, Any]]]


def table_rows(url: str) -> Rows:
    """Every row of every table of the database at ``url`` (reflected: the tables as they
    are, not as the models say), by table name."""
    engine = create_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as conn:
            return {
                name: [dict(r._mapping) for r in conn.execute(select(table))]
                for name, table in tables.tables.items()
            }
    finally:
        engine.dispose()


def as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def found_in_rows(rows: Rows, needles: dict[str, bytes]) -> list[str]:
    """``table.column: needle name`` for each value holding a needle."""
    return [
        f"{table}.{column}: {name}"
        for table, found in rows.items()
        for row in found
        for column, value in row.items()
        for name, needle in needles.items()
        if needle in as_bytes(value)
    ]


def found_in_files(root: Path, needles: dict[str, bytes]) -> list[str]:
    """``file: needle name`` for each file under ``root`` holding a needle."""
    return [
        f"{path.relative_to(root)}: {name}"
        for path in sorted(root.rglob("*"))
        if path.is_file()
        for name, needle in needles.items()
        if needle in path.read_bytes()
    ]


def envelope_needles(name: str, data: bytes) -> dict[str, bytes]:
    """Slices of an envelope's ciphertext, each unique to it, to search for."""
    size = len(data)
    return {f"{name} bytes at {at}": data[at : at + 32] for at in (size // 4, size // 2, size - 32)}


def environment(settings: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **settings}
    if "DATABASE_URL" not in settings:
        env.pop("DATABASE_URL", None)
    return env
