"""POST /report/sealed: browser-sealed envelopes, stored with only the allowed metadata.

Every hostile request gets a 4xx with a JSON message a person can act on,
never a 500, and leaves the database and the data directory as they were.
Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json

import pytest
from source_fixtures import (
    SECRET,
    browser_envelope,
    clear_reply_key,
    csrf_token,
    reply_key,
    rows,
    snapshot,
    token_hex,
    upload,
)

from portal import envelope, receipt, report, storage
from portal.envelope import SealPath
from portal.keys import load_manifest
from portal.models import SealedBy

LOW_ORDER = bytes(32)  # the identity point
NON_CANONICAL = (2**255 - 19 + 1).to_bytes(32, "little")


def fingerprints(team) -> list[dict[str, str]]:
    keys = load_manifest(team.manifest).active
    return [{"label": k.label, "fingerprint": k.fingerprint} for k in keys]


def test_a_browser_sealed_report_is_stored_with_only_the_allowed_metadata(
    app, client, database_url, team_keys
):
    reply = reply_key()
    document = report.document({"account": "a test"}, reply, "browser")
    body = browser_envelope(team_keys, document)
    token = token_hex()
    response = upload(client, body, token=token, reply=base64.b64encode(reply).decode())
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json() == {"fingerprints": fingerprints(team_keys)}
    assert response.headers["Cache-Control"] == "no-store"
    found = rows(database_url)
    (thread,) = found["threads"]
    (submission,) = found["submissions"]
    digest_key = receipt.server_digest_key(SECRET.encode())
    assert bytes(thread["lookup_digest"]) == receipt.lookup_digest(digest_key, bytes.fromhex(token))
    # Masked at rest under the server's secret: the clear key follows from a receipt.
    assert bytes(thread["reply_public_key"]) != reply
    assert clear_reply_key(thread) == reply
    header = envelope.parse_header(body)
    assert set(submission) == {"id", "thread_id", "received_on", "sealed_by", "padded_size",
                               "envelope_size", "recipient_key_ids", "exported_on"}  # fmt: skip
    assert submission["exported_on"] is None  # not exported yet
    assert submission["sealed_by"] is SealedBy.BROWSER
    assert submission["padded_size"] == header.padded_size
    assert submission["envelope_size"] == len(body)
    assert submission["recipient_key_ids"] == " ".join(k.hex() for k in header.key_ids)
    assert submission["received_on"] == thread["created_on"]
    stored = storage.envelope_path(app.extensions["portal.source"].config.data_dir,
                                   submission["id"]).read_bytes()  # fmt: skip
    assert stored == body
    for identity in team_keys.identities:
        assert json.loads(envelope.open_bytes(stored, [identity])) == document


def test_the_key_order_in_the_header_does_not_matter(client, team_keys):
    body = browser_envelope(team_keys, keys=tuple(reversed(team_keys.public_keys)))
    assert upload(client, body).status_code == 201


def test_a_reused_lookup_token_is_refused_without_storing(app, client, team_keys):
    token = token_hex()
    assert upload(client, browser_envelope(team_keys), token=token).status_code == 201
    before = snapshot(app)
    response = upload(client, browser_envelope(team_keys), token=token)
    assert response.status_code == 409
    assert "received already" in response.get_json()["error"]
    assert snapshot(app) == before


def expect_refused(app, response, status: int, words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    message = response.get_json()["error"]
    assert words in message
    assert snapshot(app).submissions == 0 and snapshot(app).files == ()


def test_an_oversized_body_is_refused(app, client):
    response = upload(
        client, b"\x01" * (app.extensions["portal.source"].config.max_report_bytes + 1)
    )
    expect_refused(app, response, 413, "larger than this portal accepts")


def test_a_valid_envelope_above_the_configured_limit_is_refused(make_app, database_url, team_keys):
    app = make_app(database_url, max_report_bytes=100_000)
    small = envelope.seal(b"x" * 1000, list(team_keys.public_keys), SealPath.BROWSER)
    big = envelope.seal(b"x" * 120_000, list(team_keys.public_keys), SealPath.BROWSER)
    expect_refused(app, upload(app.test_client(), big), 413, "larger than this portal accepts")
    assert upload(app.test_client(), small).status_code == 201


def test_an_empty_body_is_refused(app, client):
    expect_refused(app, upload(client, b""), 400, "arrived empty")


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-1],  # last byte missing
        lambda b: b[:10],  # cut in the fixed header
        lambda b: b[:200],  # cut in the stanzas
        lambda b: b[: envelope.parse_header(b).header_size],  # header only
        lambda b: b + b"\x00",  # a trailing byte
        lambda b: b"garbage" * 20,
        lambda b: bytes([2]) + b[1:],  # unknown version
        lambda b: b[:5] + bytes([9]) + b[6:],  # unknown path byte
        lambda b: b[:7] + bytes([15]) + b[8:],  # chunk exponent
        lambda b: b[:6] + bytes([0]) + b[7:],  # zero recipients
    ],
    ids=[
        "last-byte",
        "fixed-header",
        "stanzas",
        "header-only",
        "trailing",
        "garbage",
        "version",
        "path-byte",
        "chunk-exponent",
        "zero-recipients",
    ],
)
def test_a_malformed_or_truncated_envelope_is_refused(app, client, team_keys, damage):
    response = upload(client, damage(browser_envelope(team_keys)))
    expect_refused(app, response, 400, "damaged or incomplete")


@pytest.mark.parametrize("path", [SealPath.SERVER, SealPath.DESK])
def test_an_envelope_not_sealed_by_a_browser_is_refused(app, client, team_keys, path):
    response = upload(client, browser_envelope(team_keys, path=path))
    expect_refused(app, response, 400, "sealed in your browser")


def test_a_path_byte_changed_to_server_is_refused(app, client, team_keys):
    body = browser_envelope(team_keys)
    changed = body[:5] + bytes([SealPath.SERVER]) + body[6:]
    expect_refused(app, upload(client, changed), 400, "sealed in your browser")


@pytest.mark.parametrize("which", ["missing", "extra", "unknown", "only-unknown"])
def test_wrong_recipients_are_refused(app, client, team_keys, which):
    a, b = team_keys.public_keys
    keys = {
        "missing": (a,),
        "extra": (a, b, team_keys.outsider),
        "unknown": (a, team_keys.outsider),
        "only-unknown": (team_keys.outsider,),
    }[which]
    response = upload(client, browser_envelope(team_keys, keys=keys))
    expect_refused(app, response, 400, "current keys")


@pytest.mark.parametrize(
    "token",
    ["", "ab" * 31 + "a", "ab" * 33, "AB" * 32, "zz" * 32, " " + "ab" * 32, "ab" * 32 + "\t"],
    ids=["empty", "63", "66", "upper-case", "not-hex", "leading-space", "trailing-tab"],
)
def test_a_bad_lookup_token_is_refused(app, client, team_keys, token):
    response = upload(client, browser_envelope(team_keys), token=token)
    expect_refused(app, response, 400, "lookup token")


def test_a_missing_lookup_token_is_refused(app, client, team_keys):
    response = upload(client, browser_envelope(team_keys), drop=("X-Lookup-Token",))
    expect_refused(app, response, 400, "lookup token")


@pytest.mark.parametrize(
    "key",
    [
        "",
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        "not base64!",
        base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # base64url, not base64
        base64.b64encode(b"\x01" * 32).decode().rstrip("="),  # padding missing
        base64.b64encode(LOW_ORDER).decode(),
        base64.b64encode(NON_CANONICAL).decode(),
        base64.b64encode(b"\x01" * 32).decode()[:-2] + "F=",  # non-zero padding bits
    ],
    ids=[
        "empty",
        "31-bytes",
        "33-bytes",
        "not-base64",
        "base64url",
        "unpadded",
        "low-order",
        "non-canonical",
        "padding-bits",
    ],
)
def test_a_bad_reply_key_is_refused(app, client, team_keys, key):
    response = upload(client, browser_envelope(team_keys), reply=key)
    expect_refused(app, response, 400, "reply key")


def test_a_missing_reply_key_is_refused(app, client, team_keys):
    response = upload(client, browser_envelope(team_keys), drop=("X-Reply-Key",))
    expect_refused(app, response, 400, "reply key")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json"],
)  # fmt: skip
def test_a_wrong_content_type_is_refused(app, client, team_keys, content_type):
    response = upload(client, browser_envelope(team_keys), content_type=content_type)
    expect_refused(app, response, 415, "does not accept")


def test_a_missing_content_type_is_refused(app, client, team_keys):
    response = upload(client, browser_envelope(team_keys), drop=("Content-Type",))
    expect_refused(app, response, 415, "does not accept")


@pytest.mark.parametrize("csrf", ["", "not-a-token", "missing"])
def test_a_missing_or_wrong_csrf_token_is_refused(app, client, team_keys, csrf):
    csrf_token(client)  # the session exists; only the token is wrong
    drop = ("X-CSRFToken",) if csrf == "missing" else ()
    response = upload(client, browser_envelope(team_keys), csrf=csrf or "", drop=drop)
    expect_refused(app, response, 400, "reload the form")


def test_a_csrf_token_from_another_session_is_refused(app, client, team_keys):
    other = app.test_client()
    response = upload(client, browser_envelope(team_keys), csrf=csrf_token(other))
    expect_refused(app, response, 400, "reload the form")


def test_a_csrf_token_is_accepted_once(app, client, team_keys):
    token = csrf_token(client)
    assert upload(client, browser_envelope(team_keys), csrf=token).status_code == 201
    before = snapshot(app)
    response = upload(client, browser_envelope(team_keys), csrf=token)
    assert response.status_code == 400
    assert "already sent" in response.get_json()["error"]
    assert snapshot(app) == before
    assert upload(client, browser_envelope(team_keys)).status_code == 201  # a fresh form works
