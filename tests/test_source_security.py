"""Cookies, CSRF and HTTPS: the session holds nothing but the CSRF token."""

from __future__ import annotations

import base64
import json
import zlib

from source_fixtures import CSRF, browser_envelope, upload

from portal.source.security import CSP


def session_payload(cookie: str) -> dict[str, object]:
    """The JSON inside Flask's signed session cookie (readable, though not forgeable)."""
    value = cookie.split("=", 1)[1].split(";", 1)[0]
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    loaded: dict[str, object] = json.loads(zlib.decompress(raw) if compressed else raw)
    return loaded


def test_the_session_holds_only_the_csrf_token(sqlite_client):
    cookie = sqlite_client.get("/report").headers["Set-Cookie"]
    assert set(session_payload(cookie)) == {"csrf_token"}


def test_under_https_the_cookie_is_secure_and_csrf_needs_no_referrer(make_app, sqlite_url,
                                                                     team_keys):  # fmt: skip
    app = make_app(sqlite_url, https=True)
    client = app.test_client()
    page = client.get("/report", base_url="https://portal.example/")
    cookie = page.headers["Set-Cookie"].lower()
    assert "; secure" in cookie and "samesite=strict" in cookie and "httponly" in cookie
    match = CSRF.search(page.get_data(as_text=True))
    assert match
    token = match.group(1)
    response = client.post(
        "/report/sealed",
        base_url="https://portal.example/",
        data=browser_envelope(team_keys),
        headers={
            "X-CSRFToken": token,
            "X-Lookup-Token": "ab" * 32,
            "X-Reply-Key": base64.b64encode(bytes(range(1, 33))).decode(),
            "Content-Type": "application/octet-stream",
        },
    )  # no Referer: the portal's own Referrer-Policy withholds it
    assert response.status_code == 201, response.get_data(as_text=True)


def test_the_csp_allows_no_inline_code_and_no_wasm_eval():
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert "wasm-unsafe-eval" not in CSP
    assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP


def test_a_201_answer_carries_no_new_secret(client, team_keys):
    response = upload(client, browser_envelope(team_keys))
    assert response.status_code == 201
    assert set(response.get_json()) == {"fingerprints"}
    for cookie in response.headers.getlist("Set-Cookie"):
        payload = session_payload(cookie) if "=;" not in cookie else {}
        assert set(payload) <= {"csrf_token"}
