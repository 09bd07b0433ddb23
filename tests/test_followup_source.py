"""Follow-ups on the source interface: the form, /followup/plain and /followup/sealed.

A follow-up is stored as one more submission of the thread its lookup
token finds, sealed in the browser or (without JavaScript, after the
explicit choice) by the server in memory. Every hostile request gets a 4xx
with a message a person can act on, never a 500, and stores nothing. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import secrets
from base64 import b64encode

import pytest
from followup_helpers import (
    form_csrf,
    post_followup,
    report,
    sealed_followup,
    token_of,
    upload_followup,
)
from nacl import bindings
from source_fixtures import browser_envelope, rows, snapshot
from sqlalchemy import select

from portal import envelope, followup, receipt, storage
from portal.envelope import SealPath
from portal.models import SealedBy, Submission

MARKER = "FOLLOWUP-MARKER-"


def stored(app) -> list[Submission]:
    with app.extensions["portal.source"].db.session() as session:
        return list(session.scalars(select(Submission).order_by(Submission.received_on)))


def opened(app, team, submission_id: str) -> dict:
    path = storage.envelope_path(app.extensions["portal.source"].config.data_dir, submission_id)
    return json.loads(envelope.open_bytes(path.read_bytes(), [team.identities[1]]))


def no_trace(app, database_url: str, marker: str) -> None:
    data_dir = app.extensions["portal.source"].config.data_dir
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path.name
    assert marker not in json.dumps(rows(database_url), default=repr)


def test_the_form_has_the_receipt_the_text_and_four_consent_questions_at_no_change(client):
    page = client.get("/followup")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert 'name="receipt"' in html and 'name="account"' in html
    for name in followup.CONSENT_NAMES:
        assert f'<input type="radio" name="{name}" value="" checked>' in html
    assert 'name="server_seal_consent"' in html and "<noscript>" in html
    assert 'id="recipient-keys"' in html


def test_a_plain_followup_joins_the_thread_sealed_by_the_server(app, client, database_url,
                                                                 team_keys):  # fmt: skip
    shown = report(client)
    (first,) = stored(app)
    marker = MARKER + secrets.token_hex(8)
    response = post_followup(client, shown, {"account": f"More: {marker}",
                                             "consent_publication": "no"})  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "data-followup-sent" in response.get_data(as_text=True)
    (second,) = [s for s in stored(app) if s.id != first.id]
    assert first.thread_id == second.thread_id
    assert second.sealed_by is SealedBy.SERVER
    document = opened(app, team_keys, second.id)
    assert document["type"] == "reprisal-followup" and document["sealed_by"] == "server"
    assert document["fields"] == {"account": f"More: {marker}", "consent_publication": "no"}
    key = team_keys.public_keys[1]
    proof = followup.thread_proof(receipt.reply_secret(shown), receipt.reply_public_key(shown), key)
    assert document["thread_proofs"][envelope.key_id(key).hex()] == b64encode(proof).decode()
    assert shown.replace(" ", "") not in json.dumps(document)
    no_trace(app, database_url, marker)
    no_trace(app, database_url, shown.replace(" ", ""))


def test_a_browser_sealed_followup_joins_the_thread(app, client, database_url, team_keys):
    shown = report(client)
    (first,) = stored(app)
    body = sealed_followup(team_keys, shown, {"account": "more"})
    response = upload_followup(client, body, token_of(shown))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "fingerprints" in response.get_json()
    (second,) = [s for s in stored(app) if s.id != first.id]
    assert first.thread_id == second.thread_id and second.sealed_by is SealedBy.BROWSER
    assert len(rows(database_url)["threads"]) == 1


def test_nothing_is_sealed_without_the_choice_or_with_bad_answers(app, client):
    shown = report(client)
    before = snapshot(app)
    cases = [
        ({"account": "x"}, False, 400, "Nothing was sent yet."),
        ({}, True, 400, "change at least one consent answer"),
        ({"account": "x", "consent_reply": "maybe"}, True, 400, "Choose from the list."),
        ({"account": "x" * (report_max := 100_001)}, True, 400, "This is too long."),
        ({"account": "x", "acts": "threats"}, True, 400, "answers this portal does not know"),
    ]
    for values, consent, status, message in cases:
        response = post_followup(client, shown, values, consent=consent)
        assert response.status_code == status, values
        assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert report_max > followup.BY_NAME["account"].max_length
    assert snapshot(app) == before


def test_a_bad_or_unknown_receipt_stores_nothing_and_is_never_echoed(app, client):
    report(client)
    before = snapshot(app)
    for typed, status, message in (
        ("12345", 400, "This is not a valid receipt"),
        ("4477537925138817503599251204３９", 404, "No report was found for this receipt"),
    ):
        response = post_followup(client, typed, {"account": "x"})
        page = response.get_data(as_text=True)
        assert response.status_code == status and message in page
        assert typed not in page
    assert snapshot(app) == before


def test_the_plain_path_needs_a_csrf_token_used_once(app, client):
    shown = report(client)
    before = snapshot(app)
    assert post_followup(client, shown, {"account": "x"}, csrf="forged").status_code == 400
    assert snapshot(app) == before
    token = form_csrf(client)
    assert post_followup(client, shown, {"account": "x"}, csrf=token).status_code == 200
    again = post_followup(client, shown, {"account": "x"}, csrf=token)
    assert again.status_code == 400 and "out of date or was already sent" in again.get_data(
        as_text=True
    )
    assert len(stored(app)) == 2


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ("unknown thread", 404, "No report was found for this receipt"),
        ("bad token", 400, "lookup token is missing or malformed"),
        ("empty", 400, "arrived empty"),
        ("truncated", 400, "damaged or incomplete"),
        ("server path", 400, "does not say it was sealed in your browser"),
        ("outsider key", 400, "not sealed to exactly the portal's current keys"),
        ("no csrf", 400, "out of date or was already sent"),
        ("form type", 415, "does not accept"),
        ("too large", 413, "larger than this portal accepts"),
    ],
)
def test_a_hostile_sealed_followup_is_refused_and_stores_nothing(
    app, client, team_keys, change, status, message
):
    shown = report(client)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    token, csrf, content_type = token_of(shown), None, "application/octet-stream"
    if change == "unknown thread":
        token = secrets.token_bytes(32).hex()
    elif change == "bad token":
        token = token.upper()
    elif change == "empty":
        body = b""
    elif change == "truncated":
        body = body[:-100]
    elif change == "server path":
        body = browser_envelope(team_keys, path=SealPath.SERVER)
    elif change == "outsider key":
        body = browser_envelope(team_keys, keys=(team_keys.outsider,))
    elif change == "no csrf":
        csrf = ""
    elif change == "form type":
        content_type = "application/x-www-form-urlencoded"
    elif change == "too large":
        body = body + bytes(app.config["MAX_CONTENT_LENGTH"])
    before = snapshot(app)
    response = upload_followup(client, body, token, csrf=csrf, content_type=content_type)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert snapshot(app) == before


def test_follow_ups_are_refused_without_a_key(make_app, database_url, tmp_path):
    missing = tmp_path / "nowhere.json"
    app = make_app(database_url, keys_manifest=missing)
    client = app.test_client()
    assert client.get("/followup").status_code == 503
    response = client.post("/followup/sealed", data=b"x",
                           headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert response.status_code == 503 and "error" in response.get_json()
    app.extensions["portal.source"].db.dispose()


def test_a_storage_failure_is_a_503_and_leaves_nothing(app, client, team_keys, monkeypatch):
    shown = report(client)
    before = snapshot(app)

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage, "write_durably", refuse)
    response = upload_followup(client, sealed_followup(team_keys, shown, {"account": "x"}),
                               token_of(shown))  # fmt: skip
    assert (
        response.status_code == 503
        and "could not store the follow-up" in (response.get_json()["error"])
    )
    assert snapshot(app) == before


def test_the_followup_proof_is_symmetric_and_bound_to_the_receipt(team_keys):
    shown = "12345 60123 45678 90123 45601 23451"
    team_secret = bytes(range(32))
    team = bytes(bindings.crypto_scalarmult_base(team_secret))
    pub = receipt.reply_public_key(shown)
    proof = followup.thread_proof(receipt.reply_secret(shown), pub, team)
    # The known answer web/test/followup.test.mjs checks too.
    assert proof.hex() == "c50e47849f1aafc651ac5a7d2628bd0682e349b379927fd4592e1b508847e28b"
    assert followup.expected_proof(team_secret, team, pub) == proof
    other = receipt.reply_secret("44775 37925 13881 75035 99251 20439")
    assert followup.thread_proof(other, pub, team) != proof
    with pytest.raises(ValueError):
        followup.expected_proof(team_secret, team, bytes(32))
