"""Every string a person reads is translatable: a pseudo-translation must reach all of it.

The catalogue is extracted from the sources with ``babel.cfg`` (and ``N_``
for report.py's labels and the views' messages), every message is
"translated" to ``⟦message⟧``, and every text a page shows must then be
inside those brackets, except what is not language: key labels from the
manifest, fingerprints, the receipt, numbers and punctuation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from html_dom import Element, parse
from source_fixtures import answers, browser_envelope, csrf_token, post_plain, upload

from portal import receipt
from portal.config import PROJECT_ROOT
from portal.keys import load_manifest

PSEUDO = re.compile(r"⟦[^⟧]*⟧", re.DOTALL)
LETTER = re.compile(r"[^\W\d_]")
TRANSLATED_ATTRIBUTES = ("title", "alt", "placeholder", "aria-label")


def messages() -> set[str]:
    with (PROJECT_ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found = extract_from_dir(PROJECT_ROOT, method_map, options_map, keywords=keywords)
    return {m[2] for m in found if isinstance(m[2], str)}


@pytest.fixture(scope="module")
def translations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("translations")
    ids = messages()
    for locale in ("fr", "ar"):
        catalog = Catalog(locale=locale)
        for msgid in ids:
            catalog.add(msgid, f"⟦{msgid}⟧")
        folder = root / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        with (folder / "messages.mo").open("wb") as fh:
            write_mo(fh, catalog)
    return root


@pytest.fixture
def pseudo_client(make_app, sqlite_url, translations):
    client = make_app(sqlite_url, translations_dir=translations).test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr-CH, fr;q=0.9, en;q=0.5"
    return client


def untranslated(page: Element, allowed: set[str]) -> list[str]:
    """Texts and attributes a person reads that did not go through gettext."""
    left = []
    for element in page.iter():
        if element.tag in ("script", "style"):
            continue
        texts = [c for c in element.children if isinstance(c, str)]
        texts += [v or "" for k, v in element.attrs.items()
                  if k in TRANSLATED_ATTRIBUTES or k.startswith("data-msg-")]  # fmt: skip
        for text in texts:
            rest = PSEUDO.sub("", text)
            for name in allowed:
                rest = rest.replace(name, "")
            if LETTER.search(rest):
                left.append(text.strip())
    return left


def key_labels(team) -> set[str]:
    manifest = load_manifest(team.manifest)
    return {k.label for k in (*manifest.recipients, *manifest.signing_keys)}


def test_the_catalogue_has_the_form_and_the_pages():
    ids = messages()
    assert "What happened, in your own words" in ids  # report.py, N_
    assert "Start a report" in ids  # a template
    assert "The report arrived empty, so nothing was stored. Send it again." in ids  # a view


@pytest.mark.parametrize("path", ["/", "/report", "/replies", "/nowhere"])
def test_every_page_text_is_translated(pseudo_client, team_keys, path):
    page = parse(pseudo_client.get(path).get_data(as_text=True))
    assert untranslated(page, key_labels(team_keys)) == []


def test_form_problems_and_the_confirmation_are_translated(pseudo_client, team_keys):
    again = post_plain(pseudo_client, answers(account=None, target_kind="robot"), consent=False)
    assert again.status_code == 400
    page = parse(again.get_data(as_text=True))
    assert "⟦This is required.⟧" in page.find(id="field-account-problem").text
    assert untranslated(page, key_labels(team_keys)) == []
    done = post_plain(pseudo_client, answers())
    assert done.status_code == 200
    assert untranslated(parse(done.get_data(as_text=True)), key_labels(team_keys)) == []


def test_the_replies_pages_are_translated(pseudo_client, team_keys):
    form = pseudo_client.get("/replies").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    bad = pseudo_client.post("/replies", data={"csrf_token": token.group(1), "receipt": "12"})
    assert bad.status_code == 400
    assert untranslated(parse(bad.get_data(as_text=True)), key_labels(team_keys)) == []
    none = pseudo_client.post(
        "/replies", data={"csrf_token": token.group(1), "receipt": receipt.generate()}
    )
    assert none.status_code == 404
    assert untranslated(parse(none.get_data(as_text=True)), key_labels(team_keys)) == []


def test_json_errors_are_translated(pseudo_client, team_keys):
    response = upload(pseudo_client, b"", csrf=csrf_token(pseudo_client))
    assert response.get_json()["error"].startswith("⟦The report arrived empty")
    response = upload(pseudo_client, browser_envelope(team_keys), csrf="wrong")
    assert response.get_json()["error"].startswith("⟦")


def test_a_right_to_left_language_turns_the_page(make_app, sqlite_url, translations):
    client = make_app(sqlite_url, translations_dir=translations).test_client()
    html = parse(client.get("/", headers={"Accept-Language": "ar"}).get_data(as_text=True))
    assert html.find("html").attrs == {"lang": "ar", "dir": "rtl"}
    french = parse(client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True))
    assert french.find("html").attrs == {"lang": "fr", "dir": "ltr"}


def test_english_when_no_language_matches(make_app, sqlite_url, translations):
    client = make_app(sqlite_url, translations_dir=translations).test_client()
    page = client.get("/", headers={"Accept-Language": "de, ja"}).get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in page and "Start a report" in page
