"""Storing an accepted envelope, whichever path sealed it.

The server keeps the envelope, the keyed digest of the lookup token (never
the token), the reply public key masked under a key from the server's secret
(``portal.replykey``: a copy of the database cannot be matched against a
receipt without the secret) and the allowed metadata; the day of
arrival is the UTC date, never the time. A failure stores nothing and is
reported to the submitter; the operator's log gets the cause, never the
submission.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from portal import receipt, replykey, storage
from portal.envelope import Header
from portal.models import SealedBy
from portal.report import N_
from portal.source import state
from portal.source.security import rotate_csrf
from portal.source.upload import Refused

log = logging.getLogger(__name__)

TOKEN_TAKEN = N_(
    "This report was received already, so nothing new was stored. To send another report,"
    " reload the form."
)
UPLOADS_GONE = N_(
    "A file sent with the report was already sent with another report or was deleted, so"
    " nothing was stored. Reload the form and send the report and its files again."
)
NOT_STORED = N_(
    "The portal could not store the report, so nothing was kept. Please try again later."
)


def today() -> dt.date:
    """The day of arrival (UTC): the only time the server keeps."""
    return dt.datetime.now(dt.UTC).date()


def accept(
    envelope: bytes,
    header: Header,
    token: bytes,
    reply_public_key: bytes,
    sealed_by: SealedBy,
    attachments: Sequence[storage.Staged] = (),
) -> None:
    """Store a checked envelope and its checked attachments in one transaction.

    Raises :class:`Refused` (409 or 503) when nothing was stored. On success
    the CSRF token is rotated, so the same form is accepted once.
    """
    current = state.current()
    digest = receipt.lookup_digest(current.digest_key, token)
    masked = replykey.mask(current.mask_key, digest, reply_public_key)
    incoming = storage.Incoming(envelope, header, digest, masked, sealed_by)
    try:
        storage.store(current.db, current.config.data_dir, incoming, today(), attachments)
    except storage.LookupTokenTaken:
        raise Refused(409, TOKEN_TAKEN) from None
    except storage.UploadsGone:
        raise Refused(409, UPLOADS_GONE) from None
    except storage.StorageError as err:
        log.error("a submission could not be stored: %s", err)
        raise Refused(503, NOT_STORED) from None
    rotate_csrf()
