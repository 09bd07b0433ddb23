"""``portal-desk return``: the return bundle acknowledging what the desk has opened.

Every item imported with status ``opened`` and not yet in a return bundle is
acknowledged with the SHA-256 of the envelope as the desk received it
(BUNDLES.md §8). The bundle is written through :class:`AtomicOutput` (whole
or not at all, never replacing a file), and the items are recorded as
returned in the same transaction: if the file cannot be written nothing is
recorded, and if the record cannot be committed the file is removed. The
bundle also carries every pending reply (``portal-desk reply``), marked
returned in the same transaction. Each reply and the bundle itself are signed
with the desk's signing key (``--sign-key``), unlocked before anything is
read or recorded, so a wrong passphrase changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from argparse import Namespace

from sqlalchemy import select

from portal import keyfile, returnbundle
from portal.desk import passphrase
from portal.desk.casestore import OPENED, CaseBase, Item, Reply, Returned, open_store, session
from portal.desk.errors import DeskError
from portal.desk.output import AtomicOutput
from portal.desk.streams import os_error

PROG = "portal-desk"


def write_return(args: Namespace) -> int:
    """Write the return bundle to ``args.output``, signed; exit 0 when it was written."""
    signer = _signer(args)
    engine = open_store(args.store, create=False)
    try:
        CaseBase.metadata.create_all(engine)  # adds the returned table to an older store
        today = dt.datetime.now(dt.UTC).date()
        with session(engine) as db:
            pending = db.scalars(
                select(Item)
                .where(Item.status == OPENED, Item.id.not_in(select(Returned.item_id)))
                .order_by(Item.id)
            ).all()
            acks = [returnbundle.Acknowledgement(i.id, i.sha256) for i in pending]
            db.add_all(Returned(item_id=i.id, returned_on=today) for i in pending)
            waiting = db.scalars(
                select(Reply).where(Reply.returned_on.is_(None)).order_by(Reply.id)
            ).all()
            replies = [returnbundle.Reply(r.id, r.thread_id, r.envelope) for r in waiting]
            for row in waiting:
                row.returned_on = today
            db.flush()
            _write(args.output, acks, today, replies, signer)
            try:
                db.commit()
            except BaseException:
                os.unlink(args.output)
                raise
    finally:
        engine.dispose()
    if acks or replies:
        note(
            f"{len(acks)} items acknowledged and {len(replies)} replies carried in"
            f" {args.output}; carry it to the staff interface and upload it there"
        )
    else:
        note(f"nothing new to acknowledge since the last return bundle; {args.output} is empty")
    note(f"signed with {signer.entry.label!r} ({signer.entry.fingerprint})")
    return 0


def _signer(args: Namespace) -> keyfile.DeskSigningKey:
    """The unlocked signing key of ``--sign-key`` (its passphrase from the file or the terminal)."""
    locked = keyfile.read_signing(args.sign_key)
    entry = locked.entry
    if args.passphrase_file:
        phrase = passphrase.from_file(args.passphrase_file)
    else:
        phrase = passphrase.ask(f"Passphrase for {entry.label!r} ({entry.fingerprint}): ")
    return locked.unlock(phrase)


def _write(
    path: str,
    acks: list[returnbundle.Acknowledgement],
    day: dt.date,
    replies: list[returnbundle.Reply],
    signer: keyfile.DeskSigningKey,
) -> None:
    try:
        with AtomicOutput(path) as out:
            returnbundle.write_return(acks, out, day, replies, signer=signer)
    except FileExistsError:
        raise DeskError(
            f"{path} already exists", "Choose another -o FILE; a file is never replaced."
        ) from None
    except OSError as err:
        raise os_error(err, f"cannot write {path}") from None


def note(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)
