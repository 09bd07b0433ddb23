"""Helpers for the upload tests: attachment envelopes as the browser seals them, and requests.

Real crypto: an attachment is a file encoded by ``portal.attachment`` and
sealed with ``envelope.seal_stream`` (path ``browser``) to the team's keys.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from source_fixtures import Team, csrf_token
from sqlalchemy import create_engine, text
from werkzeug.test import TestResponse

from portal import attachment, envelope
from portal.envelope import SealPath
from portal.uploads import MAX_CHUNK


def attachment_envelope(
    team: Team,
    data: bytes = b"evidence",
    *,
    name: str = "photo.jpg",
    media_type: str = "image/jpeg",
    path: SealPath = SealPath.BROWSER,
    keys: tuple[bytes, ...] | None = None,
) -> tuple[bytes, attachment.Metadata]:
    """A file sealed as an attachment; returns the envelope and the metadata sealed in it."""
    encoder = attachment.Encoder([data], len(data), name=name, media_type=media_type)
    out = io.BytesIO()
    recipients = list(keys if keys is not None else team.public_keys)
    envelope.seal_stream(encoder, out, recipients, encoder.length, path)
    return out.getvalue(), encoder.metadata


def start(client: FlaskClient, length: int | str, csrf: str | None = None) -> TestResponse:
    headers = {"X-CSRF-Token": csrf if csrf is not None else csrf_token(client),
               "Upload-Length": str(length)}  # fmt: skip
    return client.post("/uploads", headers=headers)


def patch(client: FlaskClient, token: str, offset: int | str, body: bytes, csrf: str,
          **headers: str) -> TestResponse:  # fmt: skip
    sent = {"X-CSRF-Token": csrf, "Upload-Offset": str(offset),
            "Content-Type": "application/octet-stream", **headers}  # fmt: skip
    return client.patch(f"/uploads/{token}", data=body, headers=sent)


def new_upload(client: FlaskClient, length: int, csrf: str) -> str:
    response = start(client, length, csrf)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["token"])


def send(client: FlaskClient, body: bytes, csrf: str, chunk: int = MAX_CHUNK) -> str:
    """Upload ``body`` whole, ``chunk`` bytes at a time; returns the complete upload's token."""
    token = new_upload(client, len(body), csrf)
    for at in range(0, len(body), chunk):
        response = patch(client, token, at, body[at : at + chunk], csrf)
        assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"offset": len(body), "complete": True}
    return token


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


@pytest.fixture(autouse=True)
def _empty_uploads(request: pytest.FixtureRequest) -> Iterator[None]:
    """The shared PostgreSQL database loses its upload rows after each test, as others do."""
    url: Any = None
    if "database_url" in request.fixturenames:
        url = request.getfixturevalue("database_url")
    yield
    if str(url).startswith("postgresql"):
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM uploads"))
        finally:
            engine.dispose()
