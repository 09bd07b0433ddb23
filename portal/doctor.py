"""``portal doctor``: everything an operator can get wrong, each with how to fix it.

Run it as the portal's own user, with the portal's environment (see
deploy/README.md). Each check gives ``ok`` lines, or ``error`` lines each
followed by a ``hint``; the command exits non-zero on any error. Checks:
the secret (set, strong, not the development one), the key manifest (valid,
active keys, no demo key; fingerprints printed for comparison out of band),
the data directory (exists, a directory, ours, not readable by group or
others, writable, and everything in it ours and private), the database
(reachable, at the newest migration), free disk space
(``PORTAL_MIN_FREE_MIB``), the clock (not before the newest migration was
written, not absurdly far ahead), and Tor, when
``PORTAL_TOR_SOCKS`` names its SOCKS port (a SOCKS5 greeting is answered).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from portal import config as config_mod
from portal import migrate
from portal.db import Database, describe
from portal.keys import KeyManifestError, load_manifest
from portal.source.state import DEVELOPMENT_SECRET

MiB = 1 << 20
MAX_YEARS_AHEAD = 30
CREATE_DATE = re.compile(r"^Create Date: (\d{4}-\d{2}-\d{2})", re.MULTILINE)
SOCKS_TIMEOUT = 5.0


@dataclass(frozen=True)
class Finding:
    ok: bool
    message: str
    hint: str = ""


Check = Callable[[config_mod.Config], Iterator[Finding]]


def problem(message: str, hint: str) -> Finding:
    return Finding(False, message, hint)


def fine(message: str) -> Finding:
    return Finding(True, message)


def check_secret(env: Mapping[str, str]) -> Iterator[Finding]:
    try:
        secret = config_mod.secret_setting(env)
    except config_mod.ConfigError as err:
        yield problem(str(err), err.hint)
        return
    if secret is None:
        yield problem("PORTAL_SECRET_KEY is not set", config_mod.GENERATE_HINT)
    elif secret.startswith(DEVELOPMENT_SECRET):
        yield problem("PORTAL_SECRET_KEY is the development secret of `make run`",
                      config_mod.GENERATE_HINT)  # fmt: skip
    else:
        yield fine("PORTAL_SECRET_KEY is set and strong")


def check_keys(cfg: config_mod.Config) -> Iterator[Finding]:
    try:
        manifest = load_manifest(cfg.keys_manifest)
        keys = manifest.require_active()
    except KeyManifestError as err:
        yield problem(f"key manifest {cfg.keys_manifest}: {err}", err.hint)
        return
    yield fine(f"key manifest {cfg.keys_manifest}: {len(keys)} active key(s); compare each"
               " fingerprint with the one the team published elsewhere:")  # fmt: skip
    for key in keys:
        yield fine(f"  {key.label}: {key.fingerprint}")
    if manifest.is_demo:
        yield problem("the key manifest holds a DEMO key: anyone can read what is sealed to it",
                      "Set PORTAL_KEYS to the team's real manifest (keys/README.md).")  # fmt: skip


def check_data_dir(cfg: config_mod.Config) -> Iterator[Finding]:
    path = cfg.data_dir
    fix = f"Run: install -d -m 0700 -o $(id -un) {path}"
    try:
        info = path.stat()
    except OSError as err:
        yield problem(f"data directory {path}: {err.strerror}", fix)
        return
    if not stat.S_ISDIR(info.st_mode):
        yield problem(f"data directory {path} is not a directory", fix)
    elif info.st_uid != os.geteuid():
        yield problem(f"data directory {path} is owned by uid {info.st_uid}, not by this user"
                      f" (uid {os.geteuid()})", f"Run: chown -R $(id -un) {path}")  # fmt: skip
    elif info.st_mode & 0o077:
        yield problem(f"data directory {path} can be read by other users"
                      f" (mode {stat.S_IMODE(info.st_mode):04o})",
                      f"Run: chmod 0700 {path}")  # fmt: skip
    else:
        yield from _writable(path)
        yield from _private_contents(path)


def _private_contents(path: Path) -> Iterator[Finding]:
    """Every file and folder inside is ours and private (a copy by hand can lose both)."""
    uid, exposed = os.geteuid(), 0
    for entry in path.rglob("*"):
        info = entry.lstat()
        exposed += info.st_uid != uid or bool(info.st_mode & 0o077)
    if exposed:
        yield problem(f"{exposed} file(s) or folder(s) in {path} are not private to this user",
                      f"Run: chown -R $(id -un) {path} && chmod -R go= {path}")  # fmt: skip


def _writable(path: Path) -> Iterator[Finding]:
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as err:
        yield problem(f"data directory {path} is not writable: {err.strerror}",
                      "Check the mount and ReadWritePaths= in the systemd unit.")  # fmt: skip
        return
    yield fine(f"data directory {path} is ours, private (0700) and writable")


def check_database(cfg: config_mod.Config) -> Iterator[Finding]:
    shown = describe(cfg.database_url)
    db = Database(cfg.database_url)
    try:
        revision = migrate.revision_of(db.engine)
    except SQLAlchemyError as err:
        cause = str(getattr(err, "orig", None) or type(err).__name__).splitlines()[0]
        yield problem(f"cannot reach the database {shown}: {cause}",
                      "Check DATABASE_URL and that the database server runs.")  # fmt: skip
        return
    finally:
        db.dispose()
    if revision != migrate.head():
        yield problem(f"the database {shown} is at revision {revision}, not {migrate.head()}",
                      "Run: portal db upgrade")  # fmt: skip
    else:
        yield fine(f"the database {shown} is reachable and at revision {revision}")


def check_disk(cfg: config_mod.Config) -> Iterator[Finding]:
    try:
        free = shutil.disk_usage(cfg.data_dir).free
    except OSError:
        return  # the data directory's own check says why
    shown = f"{free // MiB:,} MiB free for the data directory"
    if free < cfg.min_free_bytes:
        yield problem(f"only {shown}; at least {cfg.min_free_bytes // MiB:,} MiB wanted",
                      "Free or add disk space (or lower PORTAL_MIN_FREE_MIB).")  # fmt: skip
    else:
        yield fine(shown)


def newest_migration_day() -> dt.date:
    """The day the newest migration was written: the clock cannot be before it."""
    days = [
        dt.date.fromisoformat(m.group(1))
        for path in (migrate.MIGRATIONS / "versions").glob("*.py")
        if (m := CREATE_DATE.search(path.read_text(encoding="utf-8")))
    ]
    return max(days)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_clock(_cfg: config_mod.Config) -> Iterator[Finding]:
    today, floor = utcnow().date(), newest_migration_day()
    hint = "Set the clock right and keep it right: timedatectl set-ntp true (systemd-timesyncd)."
    if today < floor:
        yield problem(f"the clock says {today}, before this version was made ({floor})", hint)
    elif today.year > floor.year + MAX_YEARS_AHEAD:
        yield problem(f"the clock says {today}, implausibly far ahead", hint)
    else:
        yield fine(f"the clock's day ({today}) is plausible")


def socks_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(value)
    return host.strip("[]"), int(port)


def check_tor(cfg: config_mod.Config) -> Iterator[Finding]:
    if not cfg.tor_socks:
        yield fine("Tor not checked (set PORTAL_TOR_SOCKS=127.0.0.1:9050 to check it)")
        return
    try:
        host, port = socks_address(cfg.tor_socks)
    except ValueError:
        yield problem(f"PORTAL_TOR_SOCKS={cfg.tor_socks!r} is not HOST:PORT",
                      "Set PORTAL_TOR_SOCKS=127.0.0.1:9050 (Tor's SocksPort).")  # fmt: skip
        return
    try:
        with socket.create_connection((host, port), timeout=SOCKS_TIMEOUT) as sock:
            sock.sendall(b"\x05\x01\x00")  # SOCKS5, one method: no authentication
            answer = sock.recv(2)
    except OSError as err:
        answer, reason = b"", err.strerror or type(err).__name__
    else:
        reason = "it did not answer as Tor's SocksPort does"
    if answer != b"\x05\x00":
        yield problem(f"Tor is not reachable at {cfg.tor_socks}: {reason}",
                      "Start it (systemctl start tor@default) and check SocksPort in"
                      " /etc/tor/torrc (deploy/torrc).")  # fmt: skip
    else:
        yield fine(f"Tor answers on {cfg.tor_socks}")


CHECKS: tuple[Check, ...] = (
    check_keys, check_data_dir, check_database, check_disk, check_clock, check_tor,
)  # fmt: skip


def examine(env: Mapping[str, str]) -> Iterator[Finding]:
    """Every finding for the environment ``env``."""
    yield from check_secret(env)
    rest = {k: v for k, v in env.items() if k != "PORTAL_SECRET_KEY"}
    try:
        cfg = config_mod.from_env(rest)
    except config_mod.ConfigError as err:
        yield problem(str(err), err.hint)
        return
    for check in CHECKS:
        yield from check(cfg)
