"""The full loop, server to desk and back: export, import, return, upload, purge.

Through the real source and staff test clients and the real ``portal-desk``,
on SQLite and PostgreSQL. After the upload the acknowledged envelope files
and their rows are gone and no file under the data directory holds any of
their bytes; a damaged, replayed, partial or foreign bundle changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient
from nacl.signing import SigningKey
from sqlalchemy import select
from staff_fixtures import form_token
from test_bundle import BROWSER_FIELDS, import_args, submit_browser, submit_plain
from test_staff_export import apps, download, figure, signed_in

if TYPE_CHECKING:
    from conftest import SignerKey

from portal import keyfile, returnbundle, storage
from portal.desk.cli import main
from portal.models import Submission, Thread
from portal.staff import dashboard

__all__ = ["apps"]  # a fixture used here
DAY = dt.date(2026, 11, 23)


def upload(client: FlaskClient, data: bytes, csrf: str | None = None, name: str = "return.tar"):
    token = form_token(client, "/") if csrf is None else csrf
    return client.post(
        "/return",
        data={"csrf_token": token, "bundle": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def alert(page: str) -> str:
    start = page.index('role="alert">') + len('role="alert">')
    return html.unescape(page[start : page.index("<", start)])


def submission_ids(app: Flask) -> list[str]:
    with app.extensions["portal.staff"].db.session() as session:
        return sorted(session.scalars(select(Submission.id)))


def thread_count(app: Flask) -> int:
    with app.extensions["portal.staff"].db.session() as session:
        return len(session.scalars(select(Thread.id)).all())


def envelopes(data_dir: Path) -> dict[str, bytes]:
    folder = data_dir / storage.ENVELOPE_DIR
    return {p.stem: p.read_bytes() for p in sorted(folder.iterdir())}


def every_file(data_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in data_dir.rglob("*") if p.is_file()]


def desk_round(client: FlaskClient, tmp_path: Path, desk_keys, signer: SignerKey,
               name: str = "r") -> bytes:  # fmt: skip
    """Download the export, import it on the desk, write the signed return bundle; its bytes."""
    exported = tmp_path / f"{name}-export.tar"
    exported.write_bytes(download(client))
    store = tmp_path / "store"
    assert main([str(a) for a in import_args(store, exported, desk_keys)]) == 0
    returned = tmp_path / f"{name}-return.tar"
    assert main(["return", "--store", str(store), *signer.return_args(), "-o", str(returned)]) == 0
    return returned.read_bytes()


def flip_digest(data: bytes) -> bytes:
    """``data`` with the first hex digit of the first listed SHA-256 changed."""
    at = data.index(b'"sha256":"') + len(b'"sha256":"')
    return data[:at] + (b"0" if data[at : at + 1] != b"0" else b"1") + data[at + 1 :]


def flip_signature(data: bytes) -> bytes:
    """``data`` with a character inside the first signature (return.sig's, without replies)."""
    at = data.index(b'"signature":"') + len(b'"signature":"') + 5
    return data[:at] + (b"A" if data[at : at + 1] != b"A" else b"B") + data[at + 1 :]


def sign_return(acks: list[returnbundle.Acknowledgement], signer: SignerKey) -> bytes:
    """A return bundle acknowledging ``acks``, signed with the desk's key."""
    out = io.BytesIO()
    returnbundle.write_return(acks, out, DAY, signer=keyfile.load_signing(
        signer.secret_file, signer.passphrase))  # fmt: skip
    return out.getvalue()


@pytest.fixture()
def loaded(apps, team_keys, clock):
    """Two browser-sealed reports and one sealed by the server; a signed-in staff client."""
    source, staff = apps
    source_client = source.test_client()
    submit_browser(source_client, team_keys, BROWSER_FIELDS)
    submit_browser(source_client, team_keys, {**BROWSER_FIELDS, "country": "Utopia"})
    submit_plain(source_client)
    return staff, signed_in(staff, clock)


def test_the_full_loop_purges_exactly_what_the_desk_acknowledged(
    loaded, data_dir, tmp_path, desk_keys, desk_signer
):
    staff, client = loaded
    stored = envelopes(data_dir)
    assert len(stored) == 3 and thread_count(staff) == 3
    returned = desk_round(client, tmp_path, desk_keys, desk_signer)
    parsed = returnbundle.parse(returned, [desk_signer.entry.public_key])
    assert {a.id for a in parsed.acknowledgements} == set(stored)

    response = upload(client, returned)
    assert response.status_code == 200, response.get_data(as_text=True)
    page = " ".join(response.get_data(as_text=True).split())
    assert "3 acknowledged submissions deleted" in page
    assert figure(page, "waiting") == "0" and figure(page, "exported") == "0"
    assert submission_ids(staff) == []
    assert envelopes(data_dir) == {}
    # The threads stay (lookup digest and reply key only), for the replies to come.
    assert thread_count(staff) == 3
    # No file under the data directory (database included) holds any of the envelopes' bytes.
    files = every_file(data_dir)
    for data in stored.values():
        for start in range(0, len(data) - 64, 4096):
            sample = data[start : start + 64]
            assert not any(sample in f for f in files)

    # The same bundle again: a replay, refused, and it says so.
    again = upload(client, returned)
    assert again.status_code == 409
    assert "uploaded before" in alert(again.get_data(as_text=True))


def test_a_digest_mismatch_keeps_that_item(loaded, data_dir, tmp_path, desk_keys, desk_signer):
    staff, client = loaded
    returned = desk_round(client, tmp_path, desk_keys, desk_signer)
    victim = sorted(envelopes(data_dir))[1]
    path = storage.envelope_path(data_dir, victim)
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 1
    path.write_bytes(bytes(damaged))

    response = upload(client, returned)
    assert response.status_code == 200
    page = " ".join(response.get_data(as_text=True).split())
    assert "2 acknowledged submissions deleted" in page
    assert f'data-kept="{victim}"' in page
    assert submission_ids(staff) == [victim]
    assert envelopes(data_dir) == {victim: bytes(damaged)}


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        (lambda d: d[:700], 400, "cut short"),
        (lambda d: b"garbage " * 300, 400, "not a return bundle"),
        (lambda d: b"", 400, "empty"),
        (lambda d: d.replace(b'"version":1', b'"version":7', 1), 400, "does not verify"),
        (lambda d: d[:10] + b"X" + d[11:], 400, "damaged"),
        (lambda d: d + b"trailing", 400, "after the end"),
        # Tampered: one acknowledged digest changed in return.json, the size unchanged.
        (lambda d: flip_digest(d), 400, "does not verify"),
        # Wrongly signed: one character of the signature in return.sig changed.
        (lambda d: flip_signature(d), 400, "does not verify"),
        # Unsigned: return.sig removed, as an older portal-desk wrote it.
        (lambda d: d[:1024] + d[2048:], 400, "not signed"),
    ],
)  # fmt: skip
def test_a_damaged_upload_changes_nothing(loaded, data_dir, tmp_path, desk_keys, desk_signer,
                                          change, status, fragment):  # fmt: skip
    staff, client = loaded
    returned = desk_round(client, tmp_path, desk_keys, desk_signer)
    before = (submission_ids(staff), envelopes(data_dir))
    response = upload(client, change(returned))
    assert response.status_code == status
    message = alert(response.get_data(as_text=True))
    assert "nothing was deleted" in message and fragment in message, message
    assert (submission_ids(staff), envelopes(data_dir)) == before


def test_a_partial_or_foreign_bundle_changes_nothing(loaded, data_dir, desk_signer):
    staff, client = loaded
    held = submission_ids(staff)
    stored = envelopes(data_dir)
    acks = [returnbundle.Acknowledgement(i, hashlib.sha256(stored[i]).digest()) for i in held]
    foreign = returnbundle.Acknowledgement("f" * 32, bytes(32))
    for chosen, fragment in (([*acks, foreign], "1 of the 4 items"),
                             ([foreign], "holds none")):  # fmt: skip
        response = upload(client, sign_return(chosen, desk_signer))
        assert response.status_code == 409
        assert fragment in alert(response.get_data(as_text=True))
        assert submission_ids(staff) == held and envelopes(data_dir) == stored
    response = upload(client, sign_return([], desk_signer))
    assert response.status_code == 409 and "acknowledges nothing" in response.get_data(as_text=True)


def test_a_bundle_signed_with_another_key_changes_nothing(loaded, data_dir):
    """What weakness 26 was: anyone with an export could forge acknowledgements."""
    staff, client = loaded
    held = submission_ids(staff)
    stored = envelopes(data_dir)
    acks = [returnbundle.Acknowledgement(i, hashlib.sha256(stored[i]).digest()) for i in held]
    out = io.BytesIO()
    returnbundle.write_return(acks, out, DAY, signer=SigningKey.generate())
    response = upload(client, out.getvalue())
    assert response.status_code == 400
    message = alert(response.get_data(as_text=True))
    assert "nothing was deleted" in message and "a key this server does not know" in message
    assert "portal-desk return --sign-key" in message
    assert submission_ids(staff) == held and envelopes(data_dir) == stored


@pytest.mark.parametrize("manifest", ["none", "no signing key", "broken"])
def test_without_a_signing_key_every_bundle_is_refused(make_staff_app, database_url, make_app,
                                                       team_keys, clock, data_dir, tmp_path,
                                                       desk_signer, manifest):  # fmt: skip
    path = tmp_path / "manifest.json"
    if manifest == "no signing key":
        doc = json.loads(team_keys.manifest.read_text())
        del doc["signing_keys"]
        path.write_text(json.dumps(doc))
    elif manifest == "broken":
        path.write_text('{"version": 1, "recipients": [], "signing_keys": [{}]}')
    source = make_app(database_url)
    staff = make_staff_app(database_url, keys_manifest=path)
    submit_browser(source.test_client(), team_keys, BROWSER_FIELDS)
    held = submission_ids(staff)
    stored = envelopes(data_dir)
    client = signed_in(staff, clock)
    acks = [returnbundle.Acknowledgement(i, hashlib.sha256(stored[i]).digest()) for i in held]
    response = upload(client, sign_return(acks, desk_signer))
    assert response.status_code == 503
    message = alert(response.get_data(as_text=True))
    assert "Return bundles cannot be accepted and nothing was changed" in message
    assert "keygen --signing" in message and "signing_keys" in message
    assert submission_ids(staff) == held and envelopes(data_dir) == stored


def test_a_huge_upload_is_refused(loaded, data_dir):
    staff, client = loaded
    held = submission_ids(staff)
    response = upload(client, bytes(dashboard.MAX_RETURN_UPLOAD + 1))
    assert response.status_code == 413
    assert "larger than" in response.get_data(as_text=True)
    assert submission_ids(staff) == held


def test_the_upload_needs_a_login_a_csrf_token_and_a_file(apps, clock, team_keys, data_dir):
    source, staff = apps
    submit_browser(source.test_client(), team_keys, BROWSER_FIELDS)
    held = submission_ids(staff)
    anonymous = staff.test_client()
    response = upload(anonymous, b"x", csrf=form_token(anonymous))
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    client = signed_in(staff, clock)
    assert upload(client, b"x", csrf="forged").status_code == 400
    no_file = client.post("/return", data={"csrf_token": form_token(client, "/")},
                          content_type="multipart/form-data")  # fmt: skip
    assert no_file.status_code == 400
    assert "Choose the return bundle file" in alert(no_file.get_data(as_text=True))
    assert submission_ids(staff) == held
