"""No log line names a submitter: no address, user agent, time, path or form field.

Checked twice: in process, capturing every logger at DEBUG while reports
and hostile requests go through the test client; and end to end, with
`portal serve source` (the development server) in a subprocess on
127.0.0.1, reading everything it prints.
"""

from __future__ import annotations

import http.cookiejar
import logging
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from source_fixtures import (
    CSRF,
    answers,
    browser_envelope,
    post_plain,
    token_hex,
    upload,
)

from portal.source import logs

BIN = Path(sys.executable).parent
USER_AGENT = "Mozilla/5.0 (UA-MARKER-7c1e)"


def assert_clean(text: str, marker: str) -> None:
    for needle in (marker, "127.0.0.1", "UA-MARKER", "/report", "GET ", "POST "):
        assert needle not in text, needle
    assert not re.search(r"\d{2}:\d{2}:\d{2}", text), "a log line carries a time"


def test_the_log_format_has_no_time():
    assert "asctime" not in logs.FORMAT and "created" not in logs.FORMAT


def test_submissions_and_refusals_log_nothing_about_the_request(client, team_keys, caplog,
                                                                capsys):  # fmt: skip
    caplog.set_level(logging.DEBUG)
    marker = f"MARKER-{uuid.uuid4().hex}"
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    assert post_plain(client, answers(account=marker)).status_code == 200
    assert post_plain(client, answers(account=marker), consent=False).status_code == 400
    assert post_plain(client, answers(account=marker), csrf="bad").status_code == 400
    assert upload(client, browser_envelope(team_keys)).status_code == 201
    assert upload(client, marker.encode()).status_code == 400
    assert client.get("/nowhere").status_code == 404
    out, err = capsys.readouterr()
    assert_clean(caplog.text + out + err, marker)


def test_the_development_server_logs_no_request(source_server, team_keys):
    url, log = source_server
    marker = f"MARKER-{uuid.uuid4().hex}"
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    opener.addheaders = [("User-Agent", USER_AGENT)]
    landing = opener.open(f"{url}/")
    assert landing.headers["Server"] == "portal"
    match = CSRF.search(opener.open(f"{url}/report").read().decode())
    assert match
    data = dict(answers(account=marker), csrf_token=match.group(1), server_seal_consent="yes")
    body = urllib.parse.urlencode(data, doseq=True).encode()
    assert opener.open(f"{url}/report/plain", data=body).status == 200
    token = CSRF.search(opener.open(f"{url}/report").read().decode())
    assert token
    sealed = urllib.request.Request(  # noqa: S310 - the test's own server on 127.0.0.1
        f"{url}/report/sealed", data=browser_envelope(team_keys), method="POST",
        headers={"Content-Type": "application/octet-stream", "X-CSRFToken": token.group(1),
                 "X-Lookup-Token": token_hex(),
                 "X-Reply-Key": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="},
    )  # fmt: skip
    assert opener.open(sealed).status == 201
    for bad in (f"{url}/nowhere", f"{url}/report/sealed"):
        with pytest.raises(urllib.error.HTTPError):
            opener.open(bad, data=marker.encode() if bad.endswith("sealed") else None)
    text = log.read_text()
    assert "serving the source interface at http://localhost:" in text
    assert_clean(text, marker)
