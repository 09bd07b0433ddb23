"""Flood limits on follow-ups: the global submissions bucket, and at most
``PORTAL_THREAD_SUBMISSIONS_PER_DAY`` submissions a day in one thread (the report counts).

Both the no-JavaScript path (``/followup/plain``: the form comes back filled
in, without the receipt) and the browser path (``/followup/sealed``: JSON),
on SQLite and PostgreSQL. A refused follow-up stores nothing.
"""

from __future__ import annotations

import datetime as dt

from followup_helpers import post_followup, report, sealed_followup, token_of, upload_followup
from source_fixtures import rows, snapshot

from portal.source import followup

KEPT = "Kept while the portal is busy."


def test_a_flood_of_follow_ups_gets_503_with_retry_after_and_stores_nothing(
    make_app, database_url, team_keys
):
    app = make_app(database_url, submissions_per_hour=20)  # a burst of 2: the report and one
    client = app.test_client()
    shown = report(client)
    assert post_followup(client, shown, {"account": "more"}).status_code == 200
    before = snapshot(app), rows(database_url)
    plain = post_followup(client, shown, {"account": KEPT})
    assert plain.status_code == 503 and plain.headers["Retry-After"] == "180"
    page = plain.get_data(as_text=True)
    assert KEPT in page and "more reports than it can take" in page
    assert shown not in page  # the receipt is never echoed
    sealed = upload_followup(client, sealed_followup(team_keys, shown, {"account": "x"}),
                             token_of(shown))  # fmt: skip
    assert sealed.status_code == 503 and sealed.headers["Retry-After"]
    assert "Nothing you sent before was affected" in sealed.get_json()["error"]
    assert (snapshot(app), rows(database_url)) == before
    assert client.get("/followup").status_code == 200  # the form itself is not limited


def test_a_thread_takes_its_daily_submissions_then_429_and_nothing_stored(
    make_app, database_url, team_keys, monkeypatch
):
    app = make_app(database_url, thread_submissions_per_day=3)
    client = app.test_client()
    shown, other = report(client), report(client)
    assert post_followup(client, shown, {"account": "second"}).status_code == 200
    body = sealed_followup(team_keys, shown, {"account": "third"})
    assert upload_followup(client, body, token_of(shown)).status_code == 201
    before = snapshot(app), rows(database_url)

    plain = post_followup(client, shown, {"account": KEPT})
    assert plain.status_code == 429
    page = plain.get_data(as_text=True)
    assert KEPT in page and "as many additions as the portal accepts in one day" in page
    assert shown not in page
    sealed = upload_followup(client, sealed_followup(team_keys, shown, {"account": "fourth"}),
                             token_of(shown))  # fmt: skip
    assert sealed.status_code == 429
    assert "try again tomorrow" in sealed.get_json()["error"]
    assert (snapshot(app), rows(database_url)) == before

    # Another thread is not affected, and the next day the thread takes follow-ups again.
    assert post_followup(client, other, {"account": "other"}).status_code == 200
    tomorrow = followup.today() + dt.timedelta(days=1)
    monkeypatch.setattr(followup, "today", lambda: tomorrow)
    assert post_followup(client, shown, {"account": "next day"}).status_code == 200
    assert snapshot(app).submissions == before[0].submissions + 2


def test_a_limit_of_zero_lets_a_thread_take_any_number(make_app, sqlite_url):
    app = make_app(sqlite_url, thread_submissions_per_day=0, submissions_per_hour=0)
    client = app.test_client()
    shown = report(client)
    for n in range(12):
        assert post_followup(client, shown, {"account": f"more {n}"}).status_code == 200
    assert snapshot(app).submissions == 13
