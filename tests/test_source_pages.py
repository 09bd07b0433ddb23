"""The source interface's pages: they render, carry the security headers, and keep the contract.

The DOM contract is docs/ARCHITECTURE.md's "source interface contract",
which web/src/form.js relies on.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path

import pytest
from html_dom import Element, parse

from portal import report
from portal.config import PROJECT_ROOT
from portal.demo import ensure_demo_key
from portal.keys import load_manifest
from portal.source import assets
from portal.source.security import CSP

DIST = PROJECT_ROOT / "portal" / "static" / "dist" / "manifest.json"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
EXACT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def assert_secure_headers(response, page: bool = True) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Security-Policy"] == EXACT_CSP
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert "geolocation=()" in response.headers["Permissions-Policy"]
    if page:
        assert response.headers["Cache-Control"] == "no-store"


def form_page(client) -> Element:
    response = client.get("/report")
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def require_dist() -> dict[str, dict[str, str]]:
    if not DIST.exists():
        pytest.fail("portal/static/dist/ is not built: run `make test` (npm ci && npm run build)")
    built: dict[str, dict[str, str]] = json.loads(DIST.read_text())
    return built


@pytest.mark.parametrize("path", ["/", "/report"])
def test_pages_render_with_the_security_headers(sqlite_client, path):
    response = sqlite_client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert_secure_headers(response)


def test_the_form_sets_a_strict_session_cookie(sqlite_client):
    response = sqlite_client.get("/report")
    (cookie,) = response.headers.getlist("Set-Cookie")
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert parts[0].startswith("portal_source=")
    assert "httponly" in parts and "samesite=strict" in parts
    assert "secure" not in parts  # an onion service is plain HTTP
    assert not any(p.startswith(("expires", "max-age")) for p in parts)  # gone with the browser


def test_the_landing_page_sets_no_cookie(sqlite_client):
    assert "Set-Cookie" not in sqlite_client.get("/").headers


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/nowhere", 404), ("post", "/", 405), ("get", "/report/sealed", 405),
     ("get", "/report/plain", 405), ("delete", "/report", 405)],
)  # fmt: skip
def test_errors_are_pages_with_the_same_headers(sqlite_client, method, path, status):
    response = getattr(sqlite_client, method)(path)
    assert response.status_code == status
    assert_secure_headers(response)
    assert "Something went wrong" in response.get_data(as_text=True)


def test_static_files_have_the_security_headers(sqlite_client):
    response = sqlite_client.get("/static/css/portal.css")
    assert response.status_code == 200
    assert_secure_headers(response, page=False)


PHYSICAL = (
    r"(?<![\w-])(margin|padding|border|inset)-(left|right|top|bottom)\b",
    r"(?<![\w-])((min-|max-)?(width|height)|left|right|top|bottom|float|clear)\s*:",
    r"text-align:\s*(left|right)",
)


def test_the_stylesheet_uses_logical_properties_only():
    css = (PROJECT_ROOT / "portal" / "static" / "css" / "portal.css").read_text()
    for pattern in PHYSICAL:
        assert not re.search(pattern, css), re.search(pattern, css)
    assert "inline-size" in css and "margin-inline" in css and "padding-block" in css


def test_landing_says_what_who_next_how_long_and_how_to_stay_safe(sqlite_client):
    text = sqlite_client.get("/").get_data(as_text=True)
    for needle in ("cooperated, or tried to cooperate, with the United Nations",
                   "the person who was targeted", "a relative", "informed consent",
                   "What happens next", "weeks or months", "Tor Browser",
                   '"Safer" or "Safest"', "a device you trust", "receipt",
                   'href="/report"'):  # fmt: skip
        assert needle in text, needle


def test_no_inline_script_or_style_anywhere(sqlite_client):
    for path in ("/", "/report", "/nowhere"):
        page = parse(sqlite_client.get(path).get_data(as_text=True))
        assert page.find_all("style") == []
        assert page.find_all(style=None) == []
        for script in page.find_all("script"):
            if "src" in script.attrs:
                assert script.attrs.get("integrity", "").startswith("sha384-")
                assert script.text == ""
            else:
                assert script.attrs.get("type") == "application/json"
        assert not any(k.startswith("on") for e in page.iter() for k in e.attrs)


def test_the_form_keeps_the_dom_contract(sqlite_client, team_keys):
    built = require_dist()
    page = form_page(sqlite_client)
    form = page.find("form", id="report-form")
    assert form.attrs["method"] == "post" and form.attrs["action"] == "/report/plain"
    assert form.attrs["data-submit-url"] == "/report/sealed"
    assert form.attrs["data-crypto-src"] == "/static/dist/crypto.js"
    assert form.attrs["data-crypto-integrity"] == built["crypto.js"]["integrity"]
    assert form.attrs["data-fallback-src"] == "/static/dist/aes-fallback.js"
    assert form.attrs["data-fallback-integrity"] == built["aes-fallback.js"]["integrity"]
    token = form.find("input", name="csrf_token")
    assert token.attrs["type"] == "hidden" and token.attrs["value"]
    consent = form.find("input", name="server_seal_consent")
    assert consent.within("noscript") and consent.attrs["type"] == "checkbox"
    assert consent.attrs["value"] == "yes"
    assert "sees your report, for a moment" in consent.parent.parent.text  # type: ignore[union-attr]
    template = page.find("template", id="confirmation-template")
    assert template.find_all(data_receipt=None) and template.find_all(data_fingerprints=None)
    (script,) = [s for s in page.find_all("script") if "src" in s.attrs]
    assert script.attrs["src"] == "/static/dist/form.js" and "defer" in script.attrs
    assert script.attrs["integrity"] == built["form.js"]["integrity"]


def test_the_recipient_keys_block_lists_exactly_the_active_keys(sqlite_client, team_keys):
    page = form_page(sqlite_client)
    block = page.find("script", id="recipient-keys")
    assert block.attrs["type"] == "application/json"
    keys = load_manifest(team_keys.manifest).active
    assert json.loads(block.text) == [
        {"label": k.label, "public_key": base64.b64encode(k.public_key).decode(),
         "fingerprint": k.fingerprint}
        for k in keys
    ]  # fmt: skip
    shown = page.find("section", class_="keys").text
    assert all(k.fingerprint in shown and k.label in shown for k in keys)


def test_the_sri_hashes_match_what_the_server_sends(sqlite_client):
    require_dist()
    form = form_page(sqlite_client).find("form", id="report-form")
    pairs = [("data-crypto-src", "data-crypto-integrity"),
             ("data-fallback-src", "data-fallback-integrity")]  # fmt: skip
    for src, integrity in pairs:
        served = sqlite_client.get(form.attrs[src])
        assert served.status_code == 200
        assert assets.integrity(served.data) == form.attrs[integrity]


def test_every_field_is_rendered_from_report_py(sqlite_client):
    page = form_page(sqlite_client)
    form = page.find("form", id="report-form")
    headings = [h.text for h in form.find_all("h2")]
    assert headings[: len(report.SECTIONS)] == [label for _, label in report.SECTIONS]
    for f in report.FIELDS:
        controls = form.find_all(name=f.name)
        assert controls, f.name
        if f.kind in ("choice", "multi"):
            values = [c.attrs.get("value") for c in controls]
            options = [o.attrs["value"] for c in controls if c.tag == "select"
                       for o in c.find_all("option")]  # fmt: skip
            offered = [v for v in values + options if v]
            assert offered == [v for v, _ in f.choices], f.name
        if f.kind == "multi":
            assert {c.attrs["type"] for c in controls} == {"checkbox"}
        if f.kind == "flag":
            (box,) = controls
            assert box.attrs["type"] == "checkbox"
        if f.kind in ("text", "year", "textarea"):
            (box,) = controls
            assert box.attrs["maxlength"] == str(f.max_length)
        if f.required:
            assert all("required" in c.attrs for c in controls if c.attrs.get("value") != "")
            container = controls[0].parent
            assert container is not None and "(required)" in (
                container.parent.text if container.tag == "label" else container.text  # type: ignore[union-attr]
            )


def test_optional_single_answers_can_be_left_unanswered(sqlite_client):
    form = form_page(sqlite_client).find("form", id="report-form")
    for f in report.FIELDS:
        if f.kind == "choice" and not f.required:
            blank = [c for c in form.find_all(name=f.name) if c.attrs.get("value") == ""]
            blank += [o for c in form.find_all("select", name=f.name)
                      for o in c.find_all("option", value="")]  # fmt: skip
            assert blank, f.name


def test_a_demo_manifest_shows_the_demo_banner(make_app, sqlite_url, tmp_path, team_keys):
    plain = make_app(sqlite_url).test_client().get("/report").get_data(as_text=True)
    assert "DEMONSTRATION ONLY" not in plain
    manifest = ensure_demo_key(tmp_path / "demo")
    app = make_app(sqlite_url, keys_manifest=manifest)
    for path in ("/", "/report"):
        page = app.test_client().get(path).get_data(as_text=True)
        assert "DEMONSTRATION ONLY" in page and "Do not send a real report here" in page


def test_without_the_built_bundles_the_form_works_without_scripts(make_app, sqlite_url,
                                                                  monkeypatch, caplog):  # fmt: skip
    monkeypatch.setattr(assets, "MANIFEST", "dist/absent.json")
    with caplog.at_level(logging.WARNING):
        app = make_app(sqlite_url)
    assert "the browser bundles are unusable" in caplog.text and "npm run build" in caplog.text
    page = form_page(app.test_client())
    form = page.find("form", id="report-form")
    assert "data-crypto-src" not in form.attrs
    assert [s for s in page.find_all("script") if "src" in s.attrs] == []
    assert form.find_all("input", name="csrf_token")


@pytest.mark.parametrize(
    "manifest",
    [
        "not json",
        "[]",
        '{"form.js": {"path": "dist/form.js", "integrity": "sha384-AAAA"}}',
        '{"form.js": {"path": "../../pyproject.toml", "integrity": "x"}}',
    ],
)
def test_an_unusable_build_manifest_is_refused(tmp_path: Path, caplog, manifest):
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "form.js").write_text("x")
    (tmp_path / "dist" / "manifest.json").write_text(manifest)
    with caplog.at_level(logging.WARNING):
        assert assets.load(tmp_path) is None
    assert "served without JavaScript" in caplog.text
