"""A real PostgreSQL server for the tests: initdb in a temporary directory, 127.0.0.1 only.

PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` system user (``runuser``) in a directory chowned to it. It
listens on 127.0.0.1 on a free port with its socket in its own directory,
trusts local connections (nothing else can reach it) and is stopped at the
end of the session. Without PostgreSQL the tests fail with the command that
installs it: a suite that skips is a suite that does not exist.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

APT = "apt-get install -y --no-install-recommends postgresql"
USER = "postgres"


@dataclass(frozen=True)
class PostgresServer:
    port: int
    data_dir: Path  # the cluster's files, where a marker must never appear

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def _execute(self, sql: str) -> None:
        dsn = f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its name."""
        name = f"t_{secrets.token_hex(6)}"
        suffix = f' TEMPLATE "{template}"' if template else ""
        self._execute(f'CREATE DATABASE "{name}"{suffix}')
        return name

    def drop_database(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def binaries() -> Path:
    """The newest installed PostgreSQL's ``bin`` directory, or fail with the apt command."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not found:
        pytest.fail(f"PostgreSQL is missing; install it with: apt-get update && {APT}")
    return Path(found[-1]).parent


def _as_postgres(*argv: str | Path) -> list[str]:
    command = [str(a) for a in argv]
    return ["runuser", "-u", USER, "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")


def _prepare(root: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the whole session."""
    bin_dir = binaries()
    root = Path(tempfile.mkdtemp(prefix="portal-pg-"))
    _prepare(root)
    data, port = root / "data", _free_port()
    _run(_as_postgres(bin_dir / "initdb", "-D", data, "-U", USER, "-A", "trust", "-E", "UTF8",
                      "--no-sync"))  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    pg_ctl = bin_dir / "pg_ctl"
    _run(_as_postgres(pg_ctl, "-D", data, "-l", root / "log", "-w", "-o", options, "start"))
    try:
        yield PostgresServer(port, data)
    finally:
        subprocess.run(_as_postgres(pg_ctl, "-D", data, "-m", "fast", "-w", "stop"),
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
