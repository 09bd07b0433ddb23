"""Shared fixtures.

Desk key pairs are made once per session with the real Argon2id parameters
(about a tenth of a second each) and written to a session directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal import keyfile
from portal.keys import RecipientKey, SigningPublicKey


@dataclass(frozen=True)
class DeskKey:
    """A generated desk key pair and the files that hold it."""

    label: str
    passphrase: str
    secret_file: Path
    passphrase_file: Path
    public_file: Path
    recipient: RecipientKey


@pytest.fixture(scope="session")
def desk_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeskKey, ...]:
    """Three key pairs ("Desk A", "Desk B", "Desk C"), each with its own passphrase."""
    folder = tmp_path_factory.mktemp("desk-keys")
    made = []
    for name in "ABC":
        label, passphrase = f"Desk {name}", f"test passphrase {name} for the desk"
        secret_file = folder / f"{name}.key"
        recipient = keyfile.write_new(secret_file, label, passphrase)
        passphrase_file = folder / f"{name}.passphrase"
        passphrase_file.write_text(passphrase + "\n", encoding="utf-8")
        public_file = folder / f"{name}.pub"
        public_file.write_text(json.dumps(recipient.to_json(), indent=2), encoding="utf-8")
        made.append(
            DeskKey(label, passphrase, secret_file, passphrase_file, public_file, recipient)
        )
    return tuple(made)


@dataclass(frozen=True)
class SignerKey:
    """The desk's signing key for the tests: its key file, passphrase and manifest entry."""

    label: str
    passphrase: str
    secret_file: Path
    passphrase_file: Path
    public_file: Path
    entry: SigningPublicKey

    def return_args(self) -> list[str]:
        """The options of ``portal-desk return`` that sign with this key."""
        return ["--sign-key", str(self.secret_file), "--passphrase-file", str(self.passphrase_file)]


@pytest.fixture(scope="session")
def desk_signer(tmp_path_factory: pytest.TempPathFactory) -> SignerKey:
    """The desk's signing key ("Desk signing"), listed in the team manifest's signing_keys."""
    folder = tmp_path_factory.mktemp("desk-signer")
    label, passphrase = "Desk signing", "test passphrase for the desk's signing key"
    secret_file = folder / "signing.key"
    entry = keyfile.write_new_signing(secret_file, label, passphrase)
    passphrase_file = folder / "signing.passphrase"
    passphrase_file.write_text(passphrase + "\n", encoding="utf-8")
    public_file = folder / "signing.pub"
    public_file.write_text(json.dumps(entry.to_json(), indent=2), encoding="utf-8")
    return SignerKey(label, passphrase, secret_file, passphrase_file, public_file, entry)


@pytest.fixture(scope="session")
def desk_manifest(desk_keys: tuple[DeskKey, ...], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest listing all three desk keys as active."""
    path = tmp_path_factory.mktemp("desk-manifest") / "manifest.json"
    entries = [k.recipient.to_json() for k in desk_keys]
    path.write_text(json.dumps({"version": 1, "recipients": entries}), encoding="utf-8")
    return path


# The source interface, storage and migration suites (tests/pg.py, tests/source_fixtures.py)
# and the staff interface (tests/staff_fixtures.py).
from pg import postgres_server  # noqa: E402
from source_fixtures import (  # noqa: E402
    app,
    client,
    data_dir,
    database_url,
    make_app,
    postgres_template,
    source_server,
    sqlite_app,
    sqlite_client,
    sqlite_template,
    sqlite_url,
    team_keys,
)
from staff_fixtures import (  # noqa: E402
    account,
    clock,
    make_staff_app,
    pending,
    staff_app,
    staff_client,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the staff app run on PostgreSQL only when marked ``both_databases``: most
    check pages, cookies and headers, and each Argon2id login costs time."""
    dropped = [
        item for item in items
        if "[postgresql" in item.nodeid and "staff_app" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("both_databases") is None
    ]  # fmt: skip
    if dropped:
        items[:] = [item for item in items if item not in dropped]
        config.hook.pytest_deselected(items=dropped)


__all__ = [
    "account",
    "app",
    "client",
    "clock",
    "data_dir",
    "database_url",
    "make_app",
    "make_staff_app",
    "pending",
    "postgres_server",
    "postgres_template",
    "source_server",
    "sqlite_app",
    "sqlite_client",
    "sqlite_template",
    "sqlite_url",
    "staff_app",
    "staff_client",
    "team_keys",
]
