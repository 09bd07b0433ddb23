"""The desk matches the files a follow-up lists, as it does a report's.

End to end: a report without files, then a follow-up sealed in the browser
with two attachments (``X-Attachments``), exported by staff and imported by
``portal-desk``: both files are verified against the follow-up's list; a
file the follow-up lists but the export lacks is reported missing.
"""

from __future__ import annotations

import json

import pytest
from followup_helpers import form_csrf, token_of
from test_followup_desk import desk, desk_import, items, thread
from test_followup_plain_files import post_files
from test_staff_export import apps
from uploads_helpers import _empty_uploads, attachment_envelope, send

from portal import envelope, followup, receipt
from portal.envelope import SealPath

__all__ = ["_empty_uploads", "apps", "thread"]  # fixtures used here


def followup_with_files(client, team_keys, shown: str, files, *, listed_only=()) -> None:
    csrf = form_csrf(client)
    sealed = [attachment_envelope(team_keys, d, name=n) for d, n in files]
    extra = [attachment_envelope(team_keys, d, name=n)[1] for d, n in listed_only]
    tokens = [send(client, body, csrf) for body, _ in sealed]
    metas = [meta for _, meta in sealed] + extra
    document = followup.document({"account": "the summons, photographed"},
                                 receipt.reply_secret(shown), list(team_keys.public_keys),
                                 "browser", metas)  # fmt: skip
    keys = list(team_keys.public_keys)
    body = envelope.seal(json.dumps(document).encode(), keys, SealPath.BROWSER)
    headers = {"X-CSRFToken": csrf, "X-Lookup-Token": token_of(shown),
               "Content-Type": "application/octet-stream",
               "X-Attachments": " ".join(tokens)}  # fmt: skip
    response = client.post("/followup/sealed", data=body, headers=headers)
    assert response.status_code == 201, response.get_json()


def test_files_listed_in_a_follow_up_are_matched(
    apps, clock, thread, tmp_path, desk_keys, team_keys, capsys
):
    _, staff = apps
    client, shown = thread
    files = [(b"summons " * 3000, "summons.pdf"), (b"\x01\x02" * 7000, "photo.jpg")]
    followup_with_files(client, team_keys, shown, files)
    assert desk_import(staff, clock, tmp_path, desk_keys) == 0
    store = str(tmp_path / "store")
    assert [s for s, _, _ in items(tmp_path / "store")] == ["opened"] * 4
    code, out, _ = desk(capsys, "cases", "--store", store)
    assert code == 0
    line = out.splitlines()[1]
    code, out, err = desk(capsys, "show", "--store", store, line.split()[0][:8])
    assert code == 0, err
    assert "Attachments listed (2)" in out and "MISSING" not in out
    assert out.count("(verified)") == 2
    assert "FOLLOW-UP" in out


def test_files_of_a_follow_up_sent_without_javascript_are_matched(
    apps, clock, thread, tmp_path, desk_keys, capsys
):
    _, staff = apps
    client, shown = thread
    files = [("summons.pdf", b"summons " * 20_000, "application/pdf"),
             ("../photo\x01.jpg", b"\xff\xd8" * 9000, "image/jpeg")]  # fmt: skip
    response = post_files(client, shown, files, account="The summons, scanned.")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert desk_import(staff, clock, tmp_path, desk_keys) == 0
    store = tmp_path / "store"
    line = desk(capsys, "cases", "--store", str(store))[1].splitlines()[1]
    code, out, err = desk(capsys, "show", "--store", str(store), line.split()[0][:8])
    assert code == 0, err
    assert "Attachments listed (2)" in out and "MISSING" not in out
    assert out.count("(verified)") == 2 and "The summons, scanned." in out
    written = sorted(p.read_bytes() for p in store.rglob("*") if p.is_file()
                     and p.read_bytes() in {c for _, c, _ in files})  # fmt: skip
    assert written == sorted(c for _, c, _ in files)


def test_a_file_a_follow_up_lists_but_lacks_is_missing(
    apps, clock, thread, tmp_path, desk_keys, team_keys, capsys
):
    _, staff = apps
    client, shown = thread
    followup_with_files(client, team_keys, shown, [(b"kept", "kept.pdf")],
                        listed_only=[(b"lost", "lost.pdf")])  # fmt: skip
    assert desk_import(staff, clock, tmp_path, desk_keys) != 0
    store = str(tmp_path / "store")
    line = desk(capsys, "cases", "--store", store)[1].splitlines()[1]
    out = desk(capsys, "show", "--store", store, line.split()[0][:8])[1]
    assert "1 listed but missing" in out and "MISSING: not imported" in out


@pytest.mark.parametrize("listing", [[], "x", [{"id": "nope"}]])
def test_a_malformed_list_in_a_follow_up_is_flagged(
    apps, clock, thread, tmp_path, desk_keys, team_keys, capsys, listing
):
    _, staff = apps
    client, shown = thread
    document = followup.document({"account": "x"}, receipt.reply_secret(shown),
                                 list(team_keys.public_keys), "browser")  # fmt: skip
    document["attachments"] = listing
    keys = list(team_keys.public_keys)
    body = envelope.seal(json.dumps(document).encode(), keys, SealPath.BROWSER)
    headers = {"X-CSRFToken": form_csrf(client), "X-Lookup-Token": token_of(shown),
               "Content-Type": "application/octet-stream"}  # fmt: skip
    assert client.post("/followup/sealed", data=body, headers=headers).status_code == 201
    desk_import(staff, clock, tmp_path, desk_keys)
    store = str(tmp_path / "store")
    line = desk(capsys, "cases", "--store", store)[1].splitlines()[1]
    out = desk(capsys, "show", "--store", store, line.split()[0][:8])[1]
    assert "its list of attachments is not usable" in out
