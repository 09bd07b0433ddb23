"""Replies: ``portal-desk reply``, return bundles that carry them, the server storing them,
and the submitter reading them with the receipt (no JavaScript).

The loop runs through the real source and staff test clients and the real
``portal-desk``, on SQLite and PostgreSQL: a report sealed by the server,
exported, imported on the desk, answered, returned, uploaded, then read
with the receipt the submitter was shown.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import logging
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient
from nacl.public import PrivateKey
from source_fixtures import answers, post_plain, receipt_of
from sqlalchemy import create_engine, func, select, text
from test_staff_export import apps, download, signed_in
from test_staff_return import alert, upload

from portal import bundle, envelope, keyfile, receipt, returnbundle, signing, storage
from portal.desk.casestore import STORE_FILE
from portal.desk.cli import main
from portal.envelope import SealPath
from portal.models import Reply, Submission, Thread

if TYPE_CHECKING:
    from conftest import SignerKey

__all__ = ["apps"]  # a fixture used here
TODAY = dt.datetime.now(dt.UTC).date()
MESSAGE = "We received your report.\nWe will write again. <b>not markup</b> & «ok»"
REPLIES = re.compile(r"data-reply-text>(.*?)</p>", re.DOTALL)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def submit(client: FlaskClient, **overrides: object) -> str:
    """A report sealed by the server (no JavaScript); the receipt shown."""
    response = post_plain(client, answers(**overrides))
    assert response.status_code == 200, response.get_data(as_text=True)
    return receipt_of(response.get_data(as_text=True))


def desk_import(client: FlaskClient, tmp_path: Path, desk_keys) -> Path:
    exported = tmp_path / "export.tar"
    exported.write_bytes(download(client))
    store = tmp_path / "store"
    key = desk_keys[0]
    args = ["import", "--store", store, "--secret-key", key.secret_file,
            "--passphrase-file", key.passphrase_file, exported]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    return store


def case_ids(store: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(text("SELECT thread_id FROM cases")))
    finally:
        engine.dispose()


def pending(store: Path) -> list[tuple[str, str, bytes, object]]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with engine.connect() as conn:
            query = "SELECT id, thread_id, envelope, returned_on FROM replies ORDER BY id"
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def reply(store: Path, case: str, desk_keys, message: str = MESSAGE) -> int:
    return main(["reply", "--store", str(store), "--message", message,
                 "--to", str(desk_keys[0].public_file), case])  # fmt: skip


def write_return(store: Path, tmp_path: Path, signer: SignerKey, name: str = "return.tar") -> bytes:
    out = tmp_path / name
    assert main(["return", "--store", str(store), *signer.return_args(), "-o", str(out)]) == 0
    return out.read_bytes()


def read_replies(client: FlaskClient, typed: str, csrf: str | None = None):
    if csrf is None:
        page = client.get("/replies").get_data(as_text=True)
        match = CSRF.search(page)
        assert match
        csrf = match.group(1)
    return client.post("/replies", data={"csrf_token": csrf, "receipt": typed})


def reply_rows(app: Flask) -> list[Reply]:
    with app.extensions["portal.staff"].db.session() as session:
        return list(session.scalars(select(Reply).order_by(Reply.id)))


@pytest.fixture()
def answered(apps, clock, desk_keys, tmp_path):
    """One report sent without JavaScript, imported on the desk and answered there."""
    source, staff = apps
    shown = submit(source.test_client())
    client = signed_in(staff, clock)
    store = desk_import(client, tmp_path, desk_keys)
    (case,) = case_ids(store)
    assert reply(store, case, desk_keys) == 0
    return source, staff, client, store, case, shown


# The desk ---------------------------------------------------------------------------


def test_a_desk_reply_opens_with_the_receipt_and_with_the_team_key(answered, desk_keys):
    _, _, _, store, case, shown = answered
    ((reply_id, thread_id, sealed, returned_on),) = pending(store)
    assert thread_id == case and returned_on is None and re.fullmatch(r"[0-9a-f]{32}", reply_id)
    header = envelope.parse_header(sealed)
    assert header.path == SealPath.DESK
    submitter = PrivateKey(receipt.reply_secret(shown))
    key = desk_keys[0]
    team = keyfile.load(key.secret_file, key.passphrase)
    for identity in (submitter, team):
        document = json.loads(envelope.open_bytes(sealed, [identity]))
        assert document == {"type": "reprisal-reply", "version": 1, "thread_id": case,
                            "text": MESSAGE}  # fmt: skip
    assert oct((store / STORE_FILE).stat().st_mode & 0o777) == oct(0o600)


def test_a_reply_is_refused_when_empty_too_long_or_for_no_case(answered, desk_keys, capsys):
    _, _, _, store, case, _ = answered
    capsys.readouterr()
    assert reply(store, case, desk_keys, "  \n") == 1
    assert "the reply is empty" in capsys.readouterr().err
    assert reply(store, case, desk_keys, "x" * 20_001) == 1
    assert "at most 20000" in capsys.readouterr().err
    assert reply(store, case, desk_keys, "bell \x07") == 1
    assert "control characters" in capsys.readouterr().err
    assert reply(store, "ffff", desk_keys) == 1
    assert "no case ffff" in capsys.readouterr().err
    assert len(pending(store)) == 1


def test_a_reply_from_a_message_file(answered, desk_keys, tmp_path):
    _, _, _, store, case, shown = answered
    path = tmp_path / "message.txt"
    path.write_text("Ответ из файла", encoding="utf-8")
    args = ["reply", "--store", str(store), "--message-file", str(path),
            "--to", str(desk_keys[0].public_file), case[:8]]  # fmt: skip
    assert main(args) == 0
    texts = sorted(
        json.loads(envelope.open_bytes(row[2], [PrivateKey(receipt.reply_secret(shown))]))["text"]
        for row in pending(store)
    )
    assert texts == sorted([MESSAGE, "Ответ из файла"])


def test_the_return_bundle_carries_pending_replies_once(answered, tmp_path, desk_signer):
    _, _, _, store, case, _ = answered
    ((reply_id, _, sealed, _),) = pending(store)
    data = write_return(store, tmp_path, desk_signer)
    public = desk_signer.entry.public_key
    parsed = returnbundle.parse(data, [public])
    assert len(parsed.acknowledgements) == 1
    ((got),) = parsed.replies
    assert (got.id, got.thread_id, got.envelope) == (reply_id, case, sealed)
    # Each reply is signed: purpose, thread id, SHA-256 of the envelope (BUNDLES.md §8.6).
    message = b"reprisals-portal/v1 reply\n" + case.encode() + hashlib.sha256(sealed).digest()
    assert signing.verify(public, message, got.signature)
    document = json.loads(data[512 : data.index(b"\n", 512)])
    signature = base64.b64encode(got.signature).decode()
    assert document["replies"] == [{"id": reply_id, "thread_id": case, "size": len(sealed),
                                    "sha256": hashlib.sha256(sealed).hexdigest(),
                                    "signature": signature}]  # fmt: skip
    # Fixed headers, like the export: return.json, return.sig, then replies/<id>.env.
    manifest = returnbundle.manifest_bytes(TODAY, parsed.acknowledgements, parsed.replies)
    at = 512 + len(manifest) + -len(manifest) % 512
    assert data[at : at + 9] == b"return.si"
    at += 1024
    assert data[at : at + 512] == bundle.tar_header(f"replies/{reply_id}.env", len(sealed))
    assert data[at + 512 : at + 512 + len(sealed)] == sealed
    assert [row[3] for row in pending(store)] == [TODAY.isoformat()]
    again = returnbundle.parse(write_return(store, tmp_path, desk_signer, "again.tar"), [public])
    assert again.replies == () and again.acknowledgements == ()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_a_tampered_or_cut_reply_member_refuses_the_whole_bundle(answered, tmp_path, desk_signer):
    source, staff, client, store, _, shown = answered
    data = write_return(store, tmp_path, desk_signer)
    ((_, _, sealed, _),) = pending(store)
    at = data.index(sealed)
    for bad, why in (
        (_flip(data, at + 100), "SHA-256"),
        (data[: at + 1000], "cut short"),
        (data[: at - 512] + data[at + len(sealed) + -len(sealed) % 512 :], "missing"),
    ):
        with pytest.raises(bundle.BundleError, match=why):
            returnbundle.parse(bad, [desk_signer.entry.public_key])
        before = (reply_rows(staff), sorted((storage.prepare(_data_dir(staff))).iterdir()))
        response = upload(client, bad)
        assert response.status_code == 400
        assert "nothing was deleted" in alert(response.get_data(as_text=True))
        after = (reply_rows(staff), sorted((storage.prepare(_data_dir(staff))).iterdir()))
        assert len(before[0]) == len(after[0]) == 0 and before[1] == after[1]
    assert read_replies(source.test_client(), shown).status_code == 404


def _data_dir(app: Flask) -> Path:
    return Path(app.extensions["portal.staff"].config.data_dir)


# The server --------------------------------------------------------------------------


def test_the_server_stores_replies_and_purges_nothing_else(answered, tmp_path, desk_signer):
    source, staff, client, store, case, _ = answered
    other = submit(source.test_client(), country="Utopia")  # a report the desk has not seen
    data = write_return(store, tmp_path, desk_signer)
    response = upload(client, data)
    assert response.status_code == 200, response.get_data(as_text=True)
    page = " ".join(response.get_data(as_text=True).split())
    assert "1 reply stored" in page
    assert re.search(r'data-figure="unread_replies">1<', page)
    ((row,),) = [reply_rows(staff)]
    ((reply_id, _, sealed, _),) = pending(store)
    assert (row.id, row.thread_id, row.received_on, row.size, row.read_on) == (
        reply_id, case, TODAY, len(sealed), None)  # fmt: skip
    # The desk's signature is stored with it, for the submitter's reader to check.
    message = b"reprisals-portal/v1 reply\n" + case.encode() + hashlib.sha256(sealed).digest()
    assert row.signature and signing.verify(desk_signer.entry.public_key, message, row.signature)
    path = storage.reply_path(_data_dir(staff), reply_id)
    assert path.read_bytes() == sealed and oct(path.stat().st_mode & 0o777) == oct(0o600)
    with staff.extensions["portal.staff"].db.session() as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 1
        assert session.scalar(select(func.count()).select_from(Thread)) == 2
    # A replay changes nothing.
    assert upload(client, data).status_code == 409
    assert len(reply_rows(staff)) == 1
    assert read_replies(source.test_client(), other).status_code == 404


def _bundle_with(replies: list[returnbundle.Reply], signer: SignerKey) -> bytes:
    out = io.BytesIO()
    unlocked = keyfile.load_signing(signer.secret_file, signer.passphrase)
    returnbundle.write_return([], out, TODAY, replies, signer=unlocked)
    return out.getvalue()


def test_unknown_threads_and_wrongly_sealed_replies_refuse_the_bundle(answered, team_keys,
                                                                      desk_signer):  # fmt: skip
    _, staff, client, _, case, shown = answered
    good = envelope.seal(b"{}", [receipt.reply_public_key(shown)], SealPath.DESK)
    foreign = envelope.seal(b"{}", list(team_keys.public_keys), SealPath.DESK)
    cases = [
        ([returnbundle.Reply("a" * 32, "b" * 32, good)], "does not hold"),
        ([returnbundle.Reply("a" * 32, case, foreign)], "not sealed to its submitter"),
        ([returnbundle.Reply("a" * 32, case, good[:-1])], "not a usable envelope"),
        (
            [
                returnbundle.Reply("a" * 32, case, good),
                returnbundle.Reply("c" * 32, "d" * 32, good),
            ],
            "does not hold",
        ),
    ]
    for replies, why in cases:
        response = upload(client, _bundle_with(replies, desk_signer))
        assert response.status_code == 409, response.get_data(as_text=True)
        assert why in " ".join(response.get_data(as_text=True).split())
        assert reply_rows(staff) == []
        assert not (_data_dir(staff) / storage.REPLY_DIR).exists() or not any(
            (_data_dir(staff) / storage.REPLY_DIR).iterdir()
        )


# The submitter -----------------------------------------------------------------------


@pytest.fixture()
def delivered(answered, tmp_path, desk_signer):
    source, staff, client, store, _, shown = answered
    response = upload(client, write_return(store, tmp_path, desk_signer))
    assert response.status_code == 200, response.get_data(as_text=True)
    return source, staff, shown


def test_the_submitter_reads_the_reply_with_the_receipt(delivered):
    source, staff, shown = delivered
    client = source.test_client()
    form = client.get("/replies")
    assert form.status_code == 200 and 'name="receipt"' in form.get_data(as_text=True)
    # Typed with other spacing, as a person might.
    response = read_replies(client, shown.replace(" ", "-"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    (shown_text,) = REPLIES.findall(page)
    assert shown_text == (
        "We received your report.\nWe will write again. &lt;b&gt;not markup&lt;/b&gt; &amp; «ok»"
    )
    assert "<b>" not in page
    assert [r.read_on for r in reply_rows(staff)] == [TODAY]
    # Read again: still there.
    assert read_replies(client, shown).status_code == 200


def test_a_wrong_receipt_gets_the_neutral_page(delivered):
    source, _, _ = delivered
    client = source.test_client()
    unknown = read_replies(client, receipt.display(receipt.generate()))
    assert unknown.status_code == 404
    body = unknown.get_data(as_text=True)
    assert "No replies for this receipt" in body
    # A thread without replies looks exactly the same.
    quiet = submit(source.test_client())
    same = read_replies(client, quiet)
    assert same.status_code == 404
    strip = lambda page: CSRF.sub("", page)  # noqa: E731
    assert strip(same.get_data(as_text=True)) == strip(body)


def test_a_malformed_receipt_is_a_400_with_a_message(delivered):
    source, _, shown = delivered
    client = source.test_client()
    digits = shown.replace(" ", "")
    changed = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    for typed in ("", "12345", changed, "abcde " * 6):
        response = read_replies(client, typed)
        assert response.status_code == 400
        assert "This is not a valid receipt" in response.get_data(as_text=True)


def test_reading_replies_needs_the_csrf_token(delivered):
    source, staff, shown = delivered
    client = source.test_client()
    response = client.post("/replies", data={"receipt": shown})
    assert response.status_code == 400
    assert MESSAGE.split("\n")[0] not in response.get_data(as_text=True)
    assert read_replies(client, shown, csrf="forged").status_code == 400
    assert [r.read_on for r in reply_rows(staff)] == [None]


def test_reading_replies_logs_nothing(
    apps, clock, desk_keys, tmp_path, caplog, capsys, desk_signer
):
    caplog.set_level(logging.DEBUG)
    marker = f"MARKER-{uuid.uuid4().hex}"
    source, staff = apps
    shown = submit(source.test_client())
    client = signed_in(staff, clock)
    store = desk_import(client, tmp_path, desk_keys)
    (case,) = case_ids(store)
    assert reply(store, case, desk_keys, marker) == 0
    assert upload(client, write_return(store, tmp_path, desk_signer)).status_code == 200
    reader = source.test_client()
    response = read_replies(reader, shown)
    assert marker in response.get_data(as_text=True)
    read_replies(reader, "1" * 30)
    read_replies(reader, receipt.display(receipt.generate()))
    out, err = capsys.readouterr()
    logged = caplog.text + out + err
    for needle in (marker, shown, shown.replace(" ", "")):
        assert needle not in logged


def _sealed(client: FlaskClient, token: str | None, csrf: str | None = None):
    if csrf is None:
        match = CSRF.search(client.get("/replies").get_data(as_text=True))
        assert match
        csrf = match.group(1)
    headers = {"X-CSRFToken": csrf}
    if token is not None:
        headers["X-Lookup-Token"] = token
    return client.post("/replies/sealed", headers=headers)


def test_the_browser_path_gets_sealed_replies_for_the_lookup_token_only(delivered):
    source, staff, shown = delivered
    client = source.test_client()
    token = receipt.lookup_token(shown).hex()
    response = _sealed(client, token)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    (item,) = response.get_json()["replies"]
    assert item["received_on"] == TODAY.isoformat()
    sealed = base64.b64decode(item["envelope"])
    (row,) = reply_rows(staff)
    assert item["thread_id"] == row.thread_id
    assert base64.b64decode(item["signature"]) == row.signature
    document = json.loads(envelope.open_bytes(sealed, [PrivateKey(receipt.reply_secret(shown))]))
    assert document["text"] == MESSAGE
    assert [r.read_on for r in reply_rows(staff)] == [TODAY]
    # An unknown token looks like a thread without replies.
    unknown = _sealed(client, receipt.lookup_token(receipt.generate()).hex())
    assert unknown.status_code == 200 and unknown.get_json() == {"replies": []}
    for bad in (None, "", token.upper(), token[:-2]):
        refused = _sealed(client, bad)
        assert refused.status_code == 400
        assert "could not be fetched" in refused.get_json()["error"]
    forged = _sealed(client, token, csrf="forged")
    assert forged.status_code == 400 and "error" in forged.get_json()
    no_csrf = client.post("/replies/sealed", headers={"X-Lookup-Token": token})
    assert no_csrf.status_code == 400


# Forged replies: planted by someone who controls the server or a staff login -------------


def _plant(staff: Flask, shown: str, text: str) -> Reply:
    """Replace the stored reply's envelope by one sealed to the submitter by someone else."""
    (row,) = reply_rows(staff)
    document = {"type": "reprisal-reply", "version": 1, "thread_id": row.thread_id, "text": text}
    forged = envelope.seal(json.dumps(document).encode(), [receipt.reply_public_key(shown)],
                           SealPath.DESK)  # fmt: skip
    storage.reply_path(_data_dir(staff), row.id).write_bytes(forged)
    return row


UNVERIFIED = "A reply could not be verified as coming from the team, so it is not shown"


@pytest.mark.parametrize("how", ["planted envelope", "other signature", "no signature"])
def test_a_reply_whose_signature_fails_is_not_shown(delivered, how):
    source, staff, shown = delivered
    forged = "Come to the embassy tomorrow with your documents."
    if how == "planted envelope":
        _plant(staff, shown, forged)
    else:
        with staff.extensions["portal.staff"].db.session() as session:
            row = session.scalars(select(Reply)).one()
            row.signature = None if how == "no signature" else bytes(64)
            session.commit()
    response = read_replies(source.test_client(), shown)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert UNVERIFIED in " ".join(page.split())
    assert REPLIES.findall(page) == [] and forged not in page and "We received" not in page
    # Not counted as read: the submitter never saw it.
    assert [r.read_on for r in reply_rows(staff)] == [None]
    # The browser path sends it with its signature; only the browser decides, and an honest
    # server does not count it as read either.
    token = receipt.lookup_token(shown).hex()
    (item,) = _sealed(source.test_client(), token).get_json()["replies"]
    assert (item["signature"] is None) == (how == "no signature")
    assert [r.read_on for r in reply_rows(staff)] == [None]


def test_without_a_signing_key_on_the_source_side_no_reply_is_shown(delivered, make_app,
                                                                    database_url, tmp_path,
                                                                    team_keys):  # fmt: skip
    shown = delivered[2]
    doc = json.loads(team_keys.manifest.read_text())
    del doc["signing_keys"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc))
    source = make_app(database_url, keys_manifest=path)
    client = source.test_client()
    assert 'data-signing-keys=""' in client.get("/replies").get_data(as_text=True)
    page = read_replies(client, shown).get_data(as_text=True)
    assert UNVERIFIED in " ".join(page.split()) and REPLIES.findall(page) == []


def test_the_replies_page_embeds_the_signing_keys(delivered, desk_signer):
    source, _, _ = delivered
    page = source.test_client().get("/replies").get_data(as_text=True)
    key = base64.b64encode(desk_signer.entry.public_key).decode()
    assert f'data-signing-keys="{key}"' in page
    # And its fingerprint, for the submitter to compare with one published elsewhere.
    assert desk_signer.entry.fingerprint in page and desk_signer.entry.label in page
