"""A follow-up with two files, sent through real Chromium with JavaScript (normal mode).

A thread is planted as in test_followup.py; the submitter types the receipt
on ``/followup``, writes a marker and chooses two files whose names and bytes
carry it. The browser seals and uploads each file, then seals the follow-up
listing them and names their uploads in ``X-Attachments``. No request carries
the marker or the receipt; the follow-up passes the desk's check (thread
proof included), and each file opens with the team's key and matches its
entry in the follow-up's list, as ``portal-desk decrypt`` writes it too.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

from harness import PASSPHRASE, Server
from test_attachments import Requests, desk_decrypt, make_files
from test_followup import assert_no_trace, fill, plant

from portal import attachment, envelope, keyfile, receipt
from portal.desk import followups


def open_all(server: Server, first: Path, shown: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The follow-up's checked document, and each attachment (by id) with its file."""
    key = keyfile.load(server.team.key_file, PASSPHRASE)
    document: dict[str, Any] | None = None
    files: dict[str, Any] = {}
    for path in sorted(first.parent.glob("*.env")):
        if path == first:
            continue
        plain = envelope.open_bytes(path.read_bytes(), [key.private_key])
        if plain.startswith(attachment.MAGIC):
            out = io.BytesIO()
            meta = attachment.decode(io.BytesIO(plain), out)
            files[meta.id] = (meta, out.getvalue(), path)
            continue
        assert document is None, "two follow-ups stored"
        sealed_by = envelope.parse_header(path.read_bytes()).path.name.lower()
        checked = followups.check(plain, sealed_by, receipt.reply_public_key(shown),
                                  [key.private_key])  # fmt: skip
        assert checked.problems == ()
        document = checked.document
    assert document is not None, "no follow-up stored"
    return document, files


def test_a_follow_up_with_two_files_reaches_the_desk_whole(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    shown, first = plant(server)
    marker = f"FOLLOWUP-FILES-{uuid.uuid4().hex}"
    chosen = make_files(tmp_path / "files", marker, [900_000, 40_000])
    page = browser_for("normal").new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    requests = Requests(page)
    page.goto(f"{server.url}/followup")
    fill(page, shown, marker)
    page.set_input_files("#attachment-files", [str(p) for p in chosen])
    page.click('#followup-form button[type="submit"]:visible')
    page.wait_for_selector("[data-followup-sent]", timeout=180_000)
    assert not errors
    requests.assert_clean(marker)
    digits = shown.replace(" ", "")
    requests.assert_clean(digits)
    requests.assert_clean(shown)
    token = receipt.lookup_token(shown).hex()
    (sealed,) = [(h, b) for m, u, h, b in requests.seen if u.endswith("/followup/sealed")]
    assert sealed[0]["x-lookup-token"] == token
    assert len(sealed[0]["x-attachments"].split(" ")) == 2
    document, files = open_all(server, first, shown)
    assert document["fields"] == {"account": marker, "consent_publication": "no"}
    listed = document["attachments"]
    assert [entry["name"] for entry in listed] == [p.name for p in chosen]
    assert len(files) == 2
    for entry, path in zip(listed, chosen, strict=True):
        meta, data, stored = files[entry["id"]]
        assert data == path.read_bytes(), f"{path.name} differs"
        assert meta.listing() == entry
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert desk_decrypt(server, stored) == data
    assert_no_trace(server, marker, digits)
