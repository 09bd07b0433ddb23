"""Mask each thread's stored reply public key under a key from the server's secret.

The reply public key follows from a receipt alone, so stored in clear it let
anyone with a copy of the database and a found receipt find the thread without
PORTAL_SECRET_KEY (SECURITY.md weakness 12). From this revision
``threads.reply_public_key`` holds the key XOR HMAC-SHA256(mask key, lookup
digest), as ``portal.replykey`` computes it; the column keeps its 32 bytes.
Upgrade masks every existing key, downgrade unmasks them.

Both need PORTAL_SECRET_KEY in the environment, but only when there are
threads: without it (or with another secret than the portal's) nothing can be
done right, so the migration refuses, naming the setting, before it changes
anything. An empty database needs no secret.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import hmac
import os

import sqlalchemy as sa
from alembic import op

from portal.config import ConfigError, secret_setting

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Copied, not imported, from portal.replykey, so that this revision masks as it
# did when written even if that module changes; the tests check they agree.
MASK_LABEL = b"reprisals-portal/v1 reply-key at rest"


def _mask_key(direction: str) -> bytes | None:
    """The mask key from PORTAL_SECRET_KEY; ``None`` when there are no threads to change."""
    if op.get_bind().execute(sa.text("SELECT 1 FROM threads LIMIT 1")).first() is None:
        return None
    secret = secret_setting(os.environ)  # refuses a weak value, naming the setting
    if secret is None:
        raise ConfigError(
            f"PORTAL_SECRET_KEY is not set: migration 0008 ({direction}) masks or unmasks"
            " the stored reply public keys with the portal's secret; they were left as they were",
            "Set PORTAL_SECRET_KEY to the secret this portal runs with (with another secret the"
            " keys come out wrong, and nothing can tell), then run it again.",
        )
    return hmac.digest(secret, MASK_LABEL, "sha256")


def _xor_all(direction: str) -> None:
    """XOR every thread's stored key with its pad: masking and unmasking are the same step."""
    key = _mask_key(direction)
    if key is None:
        return
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, lookup_digest, reply_public_key FROM threads"))
    update = sa.text("UPDATE threads SET reply_public_key = :value WHERE id = :id")
    for thread_id, digest, stored in rows.all():
        pad = hmac.digest(key, bytes(digest), "sha256")
        value = bytes(a ^ b for a, b in zip(bytes(stored), pad, strict=True))
        bind.execute(update, {"value": value, "id": thread_id})


def upgrade() -> None:
    _xor_all("upgrade")


def downgrade() -> None:
    _xor_all("downgrade")
