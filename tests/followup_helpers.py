"""Helpers shared by the follow-up tests: a report in a thread, follow-ups both ways."""

from __future__ import annotations

import json
import re
from typing import Any

from flask.testing import FlaskClient
from source_fixtures import Team, answers, post_plain, receipt_of
from werkzeug.test import TestResponse

from portal import envelope, followup, receipt
from portal.envelope import SealPath

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def report(client: FlaskClient, **overrides: Any) -> str:
    """A report sent without JavaScript; the receipt shown."""
    response = post_plain(client, answers(**overrides))
    assert response.status_code == 200, response.get_data(as_text=True)
    return receipt_of(response.get_data(as_text=True))


def form_csrf(client: FlaskClient) -> str:
    match = CSRF.search(client.get("/followup").get_data(as_text=True))
    assert match, "the follow-up form has no CSRF token"
    return match.group(1)


def post_followup(
    client: FlaskClient,
    shown: str,
    values: dict[str, Any],
    *,
    consent: bool = True,
    csrf: str | None = None,
) -> TestResponse:
    """POST /followup/plain as the form does without JavaScript."""
    data = {"receipt": shown, **values, "csrf_token": csrf or form_csrf(client)}
    if consent:
        data["server_seal_consent"] = "yes"
    return client.post("/followup/plain", data=data)


def sealed_followup(team: Team, shown: str, fields: dict[str, Any], **changes: Any) -> bytes:
    """What followup.js sends: a follow-up sealed in the browser for the receipt ``shown``."""
    secret = changes.pop("secret", receipt.reply_secret(shown))
    document = followup.document(fields, secret, list(team.public_keys), "browser")
    document.update(changes)
    return envelope.seal(json.dumps(document).encode(), list(team.public_keys), SealPath.BROWSER)


def upload_followup(
    client: FlaskClient,
    body: bytes,
    token: str,
    *,
    csrf: str | None = None,
    content_type: str = "application/octet-stream",
) -> TestResponse:
    headers = {
        "X-CSRFToken": csrf if csrf is not None else form_csrf(client),
        "X-Lookup-Token": token,
        "Content-Type": content_type,
    }
    return client.post("/followup/sealed", data=body, headers=headers)


def token_of(shown: str) -> str:
    return receipt.lookup_token(shown).hex()
