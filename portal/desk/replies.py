"""``portal-desk reply``: seal a reply to a case's submitter and keep it pending.

The reply document (FORMAT.md §15) is sealed on the desk (path DESK) to the
reply key sealed inside the submitter's own report (``cases.reply_public_key``,
never the server's word) and to the team's keys given with ``--to``, so the
desk keeps a copy it can read. Only the envelope is stored, in the case
store's ``replies`` table, until ``portal-desk return`` carries it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import unicodedata
from argparse import Namespace

from portal import envelope
from portal.desk.casestore import CaseBase, Reply, open_store, session
from portal.desk.casework import _find
from portal.desk.commands import _recipients
from portal.desk.errors import DeskError
from portal.desk.streams import read_text

REPLY_TYPE = "reprisal-reply"
REPLY_VERSION = 1
MAX_TEXT = 20_000


def document(thread_id: str, text: str) -> bytes:
    """The reply document: compact UTF-8 JSON with sorted keys."""
    obj = {"type": REPLY_TYPE, "version": REPLY_VERSION, "thread_id": thread_id, "text": text}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _message(args: Namespace) -> str:
    text: str = (
        args.message
        if args.message is not None
        else read_text(args.message_file, "the message file")
    )
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise DeskError("the reply is empty", "Write the reply with --message or --message-file.")
    if len(text) > MAX_TEXT:
        raise DeskError(
            f"the reply has {len(text)} characters; at most {MAX_TEXT}",
            "Shorten it, or split it into two replies.",
        )
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        raise DeskError(
            "the reply holds control characters",
            "Give plain text: letters, spaces, tabs and line breaks only.",
        )
    return text


def reply(args: Namespace) -> int:
    """Seal the message to case ``args.case`` and record it as pending; exit 0 when stored."""
    text = _message(args)
    team = [k.public_key for k in _recipients(args.to)]
    engine = open_store(args.store, create=False)
    try:
        CaseBase.metadata.create_all(engine)  # adds the replies table to an older store
        with session(engine) as db:
            case = _find(db, args.case)
            recipients = [case.reply_public_key, *(k for k in team if k != case.reply_public_key)]
            if len(recipients) > envelope.MAX_RECIPIENTS:
                hint = "Give fewer --to files: the submitter's key takes one place."
                raise DeskError(f"{len(recipients)} recipients; at most 16", hint)
            sealed = envelope.seal(
                document(case.thread_id, text), recipients, envelope.SealPath.DESK
            )
            reply_id = os.urandom(16).hex()
            today = dt.datetime.now(dt.UTC).date()
            db.add(Reply(id=reply_id, thread_id=case.thread_id, envelope=sealed, written_on=today))
            db.commit()
            thread_id = case.thread_id
    finally:
        engine.dispose()
    print(
        f"portal-desk: reply {reply_id} to case {thread_id} sealed and pending;"
        " `portal-desk return` carries it to the server",
        file=sys.stderr,
        flush=True,
    )
    return 0
