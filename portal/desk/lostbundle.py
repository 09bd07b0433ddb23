"""Recovering from a lost return bundle (BUNDLES.md §8.5): acknowledge again what reappears.

An item the desk has put in a return bundle is deleted from the server once
that bundle is applied, so it is never in a later export. If it is, the
bundle did not reach the server (lost, or not uploaded yet): the import then
clears the item's ``returned`` mark, and the next ``portal-desk return``
acknowledges it again. Only an item that reappears with the digest the desk
acknowledged is cleared; other bytes under the same id are refused as before.
"""

from __future__ import annotations

import hmac
import sys

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from portal.desk.casestore import Item, Returned


def reappeared(db: Session, existing: Item, sha256: bytes) -> bool:
    """Clear the returned mark of ``existing`` if a later export holds it again, unchanged.

    Returns whether a mark was cleared (committed at once, so that an
    interrupted import keeps it cleared).
    """
    if not hmac.compare_digest(existing.sha256, sha256):
        return False
    if not inspect(db.get_bind()).has_table(Returned.__tablename__):
        return False  # a store that never wrote a return bundle
    mark = db.get(Returned, existing.id)
    if mark is None:
        return False
    db.delete(mark)
    db.commit()
    return True


def note_again(count: int) -> None:
    """Tell the operator that ``count`` returned items came back, and what that means."""
    if count:
        print(
            f"portal-desk: {count} items were acknowledged in an earlier return bundle but are"
            " in this export again, so that bundle was not applied on the server (lost, or not"
            " uploaded yet); the next portal-desk return acknowledges them again",
            file=sys.stderr,
            flush=True,
        )
