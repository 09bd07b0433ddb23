"""What the source interface knows at start-up: keys, database, bundles; fail closed.

The state is built once by ``create_app`` and kept in ``app.extensions``.
Without a usable key manifest the application still starts, so that
submitters are told why nothing can be sent, but every submission is
refused (503); the operator's log says what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from portal import migrate, receipt, replykey
from portal.config import Config
from portal.db import Database
from portal.keys import KeyManifestError, RecipientKey, load_manifest
from portal.report import N_
from portal.source.assets import Assets

log = logging.getLogger(__name__)
EXTENSION = "portal.source"
DEVELOPMENT_SECRET = b"development-only-"  # how the Makefile's generated secret begins

NO_KEY = N_(
    "This portal cannot accept reports at the moment: it has no valid encryption key for"
    " the OHCHR team, so nothing you send could be protected. Nothing is stored. Please"
    " try again later."
)


@dataclass(frozen=True)
class SourceState:
    config: Config
    db: Database
    digest_key: bytes
    mask_key: bytes  # masks the stored reply public keys (portal.replykey)
    keys: tuple[RecipientKey, ...]
    assets: Assets | None
    demo: bool = False
    unavailable: str | None = None  # why submissions are refused, for the submitter

    @property
    def fingerprints(self) -> list[dict[str, str]]:
        return [{"label": k.label, "fingerprint": k.fingerprint} for k in self.keys]


def active_keys(path: Path) -> tuple[tuple[RecipientKey, ...], bool]:
    """The keys to seal to and whether they are demo keys; ``()`` (logged) if unusable."""
    try:
        manifest = load_manifest(path)
        keys = manifest.require_active()
    except KeyManifestError as err:
        log.error("submissions are refused: %s. %s", err, err.hint)
        return (), False
    if manifest.is_demo:
        log.warning("the recipient key is a DEMO key: never use this portal for real reports")
    return keys, manifest.is_demo


def check_database(db: Database) -> None:
    """Warn at start-up when the schema is not at the newest migration.

    Only a warning: a database that is down now may be up for the first
    submission, and a submission that cannot be stored is refused anyway.
    """
    try:
        revision = migrate.revision_of(db.engine)
    except SQLAlchemyError as err:
        log.warning("cannot reach the database (%s)", type(err).__name__)
        return
    if revision != migrate.head():
        log.warning("the database is not up to date: run `portal db upgrade`")


def build(config: Config, assets: Assets | None) -> SourceState:
    """The state for ``config``; raises ``ConfigError`` without a secret key."""
    secret = config.require_secret()
    if secret.startswith(DEVELOPMENT_SECRET):
        log.warning("PORTAL_SECRET_KEY is the development secret of `make run`: never deploy it")
    db = Database(config.database_url)
    check_database(db)
    keys, demo = active_keys(config.keys_manifest)
    return SourceState(
        config=config,
        db=db,
        digest_key=receipt.server_digest_key(secret),
        mask_key=replykey.mask_key(secret),
        keys=keys,
        assets=assets,
        demo=demo,
        unavailable=None if keys else NO_KEY,
    )


def current() -> SourceState:
    """The state of the application handling this request."""
    return cast(SourceState, current_app.extensions[EXTENSION])
