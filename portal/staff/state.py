"""What the staff interface knows at start-up: configuration, database and its keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from portal import replykey
from portal.config import Config
from portal.db import Database
from portal.source.state import check_database

EXTENSION = "portal.staff"
# Its own key, so that a cookie of the source interface (signed with the secret
# itself) can never pass for one of the staff interface, or the other way round.
SESSION_PURPOSE = b"reprisals-portal staff session cookie v1"


@dataclass(frozen=True)
class StaffApp:
    config: Config
    db: Database
    secret_key: bytes  # PORTAL_SECRET_KEY: opens the sealed TOTP secrets
    session_key: bytes  # signs the staff session cookie and its CSRF tokens
    mask_key: bytes  # unmasks the stored reply public keys (portal.replykey)


def session_key(secret: bytes) -> bytes:
    """The staff interface's cookie signing key, derived from ``PORTAL_SECRET_KEY``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SESSION_PURPOSE)
    return hkdf.derive(secret)


def build(config: Config) -> StaffApp:
    """The state for ``config``; raises ``ConfigError`` without a secret key."""
    secret = config.require_secret()
    db = Database(config.database_url)
    check_database(db)
    return StaffApp(
        config=config,
        db=db,
        secret_key=secret,
        session_key=session_key(secret),
        mask_key=replykey.mask_key(secret),
    )


def current() -> StaffApp:
    """The state of the application handling this request."""
    return cast(StaffApp, current_app.extensions[EXTENSION])
