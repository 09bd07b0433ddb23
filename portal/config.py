"""The portal's configuration: a frozen object built from the environment.

Each setting is read by a small pure function so that tests can build a
Config from a plain dict. There are no default secrets: ``PORTAL_SECRET_KEY``
has no default, and the web application refuses to start without a strong
one (``require_secret``). Settings:

- ``PORTAL_SECRET_KEY``: at least 256 bits of randomness, written as 64+ hex
  digits or 43+ characters of base64url (``secrets.token_urlsafe(32)``). It
  signs the CSRF tokens and keys the lookup digests: changing it makes the
  existing threads unreachable by their receipts.
- ``PORTAL_KEYS``: the recipients' key manifest, or a directory holding
  ``manifest.json`` (default ``keys/``). ``PORTAL_KEYS_MANIFEST`` is the older
  name and is still read.
- ``PORTAL_DATA_DIR``: ciphertext and the default SQLite database
  (default ``instance/data``).
- ``DATABASE_URL``: a SQLAlchemy URL (default SQLite under the data directory).
- ``PORTAL_HTTPS``: ``1`` when served over HTTPS, to mark cookies ``Secure``
  (default off: onion services are plain HTTP, encrypted by Tor).
- ``PORTAL_REPLY_RETENTION_DAYS``: replies are deleted this many days after they
  arrive, read or not (default 30; ``portal replies expire`` does it).

Operations (deploy/README.md): ``PORTAL_SUBMISSIONS_PER_HOUR`` (per worker
process; default 120), ``PORTAL_UPLOADS_PER_HOUR`` (likewise; default 60),
``PORTAL_THREAD_SUBMISSIONS_PER_DAY`` (default 10),
``PORTAL_TOR_SOCKS`` (host:port that ``portal doctor`` greets; default unset),
``PORTAL_EMPTY_THREAD_DAYS`` (``portal jobs run``; default 180, 0 keeps them).

Attachments (``docs/UPLOADS.md``), each a whole number:

- ``PORTAL_MAX_FILE_MIB``: the largest file, in MiB (default 500).
- ``PORTAL_MAX_ATTACHMENTS_MIB``: all the files of one allegation (default 2048).
- ``PORTAL_MAX_FILES``: files per allegation (default 64, at most 64).
- ``PORTAL_QUOTA_MIB``: the most the stored envelopes and the uploads in
  progress may take (default 0: no quota).
- ``PORTAL_MIN_FREE_MIB``: uploads are refused when the file system would have
  less free (default 1024).
- ``PORTAL_UPLOAD_EXPIRY_HOURS``: an upload not attached to a report within
  this time is deleted (default 48).
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_NAME = "manifest.json"
DATABASE_NAME = "portal.sqlite3"
MiB = 1 << 20

SECRET_BITS = 256
HEX_DIGITS = frozenset(string.hexdigits)
BASE64URL = frozenset(string.ascii_letters + string.digits + "-_")
MIN_DISTINCT_CHARACTERS = 10
GENERATE_HINT = (
    "Generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    " and keep it out of version control."
)
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
MAX_FILES = 64  # the report document lists at most 64 attachments (FORMAT.md)


class ConfigError(Exception):
    """A setting is missing or unusable; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Config:
    keys_manifest: Path
    data_dir: Path
    database_url: str = ""
    secret_key: bytes | None = None
    https: bool = False
    # An allegation's account is at most 100,000 characters; even at six
    # bytes of JSON escape per character its envelope stays under 1 MiB.
    max_report_bytes: int = 2 * MiB
    translations_dir: Path = PROJECT_ROOT / "translations"
    reply_retention_days: int = 30
    submissions_per_hour: int = 120  # per worker process: see portal.ratelimit
    uploads_per_hour: int = 60
    thread_submissions_per_day: int = 10
    tor_socks: str = ""
    empty_thread_days: int = 180
    max_file_bytes: int = 500 * MiB
    max_attachments_bytes: int = 2048 * MiB
    max_files: int = MAX_FILES
    quota_bytes: int = 0  # no quota
    min_free_bytes: int = 1024 * MiB
    upload_expiry_hours: int = 48

    def require_secret(self) -> bytes:
        """The secret key, or :class:`ConfigError` when it was not set."""
        if self.secret_key is None:
            raise ConfigError("PORTAL_SECRET_KEY is not set", GENERATE_HINT)
        return self.secret_key


def path_setting(env: Mapping[str, str], name: str, default: Path) -> Path:
    """An absolute path from ``env[name]``, or ``default`` when unset or empty."""
    value = env.get(name, "").strip()
    if not value:
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    return path


def manifest_path(path: Path) -> Path:
    """The manifest file itself: ``path``, or ``path/manifest.json`` for a directory."""
    return path / MANIFEST_NAME if path.is_dir() else path


def keys_setting(env: Mapping[str, str]) -> Path:
    """The manifest named by ``PORTAL_KEYS`` (or its older name), default ``keys/``."""
    default = PROJECT_ROOT / "keys"
    names = [n for n in ("PORTAL_KEYS", "PORTAL_KEYS_MANIFEST") if env.get(n, "").strip()]
    paths = {manifest_path(path_setting(env, name, default)) for name in names}
    if len(paths) > 1:
        raise ConfigError(
            "PORTAL_KEYS and PORTAL_KEYS_MANIFEST name different manifests",
            "Set only PORTAL_KEYS (PORTAL_KEYS_MANIFEST is its older name).",
        )
    return paths.pop() if paths else manifest_path(default)


def secret_bits(value: str) -> int:
    """The randomness ``value`` can hold at most, in bits, from its alphabet and length."""
    if value and set(value) <= HEX_DIGITS:
        return 4 * len(value)
    if value and set(value.rstrip("=")) <= BASE64URL | {"+", "/"}:
        return 6 * len(value.rstrip("="))
    return 0


def secret_setting(env: Mapping[str, str]) -> bytes | None:
    """``PORTAL_SECRET_KEY`` as bytes, ``None`` when unset; refuses a weak value."""
    value = env.get("PORTAL_SECRET_KEY", "").strip()
    if not value:
        return None
    if secret_bits(value) < SECRET_BITS:
        raise ConfigError(
            "PORTAL_SECRET_KEY is too short or not written in hex or base64url:"
            f" it must hold at least {SECRET_BITS} random bits",
            GENERATE_HINT,
        )
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        raise ConfigError("PORTAL_SECRET_KEY does not look random", GENERATE_HINT)
    return value.encode("ascii")


def flag_setting(env: Mapping[str, str], name: str) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (default off)."""
    value = env.get(name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be 1 or 0, not {value!r}", f"Set {name}=1 or {name}=0.")


def days_setting(env: Mapping[str, str], name: str, default: int) -> int:
    """A number of days from 1 to 3650, ``default`` when unset or empty."""
    value = env.get(name, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 3650):
        raise ConfigError(f"{name} must be a number of days from 1 to 3650, not {value!r}",
                          f"Set {name}={default}, for example.")  # fmt: skip
    return int(value)


def number_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` in ``env[name]``, or ``default`` when unset."""
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError(
            f"{name} must be a whole number from {low} to {high}, not {value!r}",
            f"Set {name} to a number such as {default}, or leave it unset.",
        )
    return int(value)


def mib_setting(env: Mapping[str, str], name: str, default: int, low: int) -> int:
    """A size given in MiB (at most 1 PiB), as bytes."""
    return number_setting(env, name, default, low, 1 << 30) * MiB


def database_setting(env: Mapping[str, str], data_dir: Path) -> str:
    """``DATABASE_URL``, or a SQLite file in the data directory."""
    return env.get("DATABASE_URL", "").strip() or f"sqlite:///{data_dir / DATABASE_NAME}"


def int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of at least 0 from ``env[name]``, or ``default`` when unset."""
    value = env.get(name, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise ConfigError(f"{name} must be a whole number, not {value!r}", f"Set {name}=0 or more.")
    return int(value)


def from_env(env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from ``env`` (the process environment by default).

    Raises :class:`ConfigError` for a value that is set but unusable.
    """
    env = os.environ if env is None else env
    data_dir = path_setting(env, "PORTAL_DATA_DIR", PROJECT_ROOT / "instance" / "data")
    return Config(
        keys_manifest=keys_setting(env),
        data_dir=data_dir,
        database_url=database_setting(env, data_dir),
        secret_key=secret_setting(env),
        https=flag_setting(env, "PORTAL_HTTPS"),
        reply_retention_days=days_setting(env, "PORTAL_REPLY_RETENTION_DAYS", 30),
        submissions_per_hour=int_setting(env, "PORTAL_SUBMISSIONS_PER_HOUR", 120),
        uploads_per_hour=int_setting(env, "PORTAL_UPLOADS_PER_HOUR", 60),
        thread_submissions_per_day=int_setting(env, "PORTAL_THREAD_SUBMISSIONS_PER_DAY", 10),
        tor_socks=env.get("PORTAL_TOR_SOCKS", "").strip(),
        empty_thread_days=int_setting(env, "PORTAL_EMPTY_THREAD_DAYS", 180),
        max_file_bytes=mib_setting(env, "PORTAL_MAX_FILE_MIB", 500, 1),
        max_attachments_bytes=mib_setting(env, "PORTAL_MAX_ATTACHMENTS_MIB", 2048, 1),
        max_files=number_setting(env, "PORTAL_MAX_FILES", MAX_FILES, 0, MAX_FILES),
        quota_bytes=mib_setting(env, "PORTAL_QUOTA_MIB", 0, 0),
        min_free_bytes=mib_setting(env, "PORTAL_MIN_FREE_MIB", 1024, 0),
        upload_expiry_hours=number_setting(env, "PORTAL_UPLOAD_EXPIRY_HOURS", 48, 1, 24 * 365),
    )
