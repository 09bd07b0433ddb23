"""Flood defense without addresses: global buckets in memory, per-thread limits from the rows."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Blueprint
from source_fixtures import (
    answers,
    browser_envelope,
    csrf_token,
    post_plain,
    rows,
    snapshot,
    upload,
)

from portal import ratelimit
from portal.config import from_env
from portal.models import SealedBy, Submission, Thread
from portal.source.upload import Refused


def test_a_bucket_gives_its_burst_then_one_token_per_interval():
    bucket = ratelimit.Bucket(per_hour=36, now=100.0)  # one token every 100 s, burst 3
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(100.0)
    assert bucket.take(150.0) == pytest.approx(50.0)
    assert bucket.take(200.0) == 0.0
    assert bucket.take(200.0) == pytest.approx(100.0)
    # Refills stop at the burst, however long the portal was idle.
    assert [bucket.take(1_000_000.0) for _ in range(4)][-1] == pytest.approx(100.0)


def test_a_clock_that_goes_back_adds_no_tokens():
    bucket = ratelimit.Bucket(per_hour=10, now=1000.0)
    assert bucket.take(1000.0) == 0.0
    assert bucket.take(10.0) > 0


def test_a_setting_of_zero_means_no_limit(team_keys, data_dir, sqlite_url):
    from source_fixtures import make_config

    config = make_config(team_keys, data_dir, sqlite_url, submissions_per_hour=0)
    assert ratelimit.buckets_for(config, 0.0)["submissions"] is None
    assert ratelimit.buckets_for(config, 0.0)["uploads"] is not None


def test_the_operations_settings_have_defaults_and_come_from_the_environment():
    defaults = from_env({})
    assert (defaults.min_free_bytes, defaults.tor_socks, defaults.empty_thread_days) == (
        1024 << 20, "", 180,
    )  # fmt: skip
    cfg = from_env({"PORTAL_MIN_FREE_MIB": "5", "PORTAL_TOR_SOCKS": " 127.0.0.1:9050 ",
                    "PORTAL_EMPTY_THREAD_DAYS": "0"})  # fmt: skip
    expected = (5 << 20, "127.0.0.1:9050", 0)
    assert (cfg.min_free_bytes, cfg.tor_socks, cfg.empty_thread_days) == expected


def test_the_settings_come_from_the_environment():
    cfg = from_env({"PORTAL_SUBMISSIONS_PER_HOUR": "7", "PORTAL_UPLOADS_PER_HOUR": "0",
                    "PORTAL_THREAD_SUBMISSIONS_PER_DAY": "3"})  # fmt: skip
    assert (cfg.submissions_per_hour, cfg.uploads_per_hour, cfg.thread_submissions_per_day) == (
        7, 0, 3,
    )  # fmt: skip


@pytest.mark.parametrize("value", ["-1", "ten", "1e3", "٣", "9" * 13])
def test_a_malformed_limit_is_refused_with_a_hint(value):
    from portal.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        from_env({"PORTAL_SUBMISSIONS_PER_HOUR": value})
    assert "PORTAL_SUBMISSIONS_PER_HOUR" in str(caught.value)
    assert caught.value.hint


def test_a_flood_of_browser_reports_gets_503_with_retry_after_and_keeps_the_accepted(
    make_app, database_url, team_keys
):
    app = make_app(database_url, submissions_per_hour=20)  # a burst of 2
    client = app.test_client()
    accepted = [upload(client, browser_envelope(team_keys)) for _ in range(2)]
    assert [r.status_code for r in accepted] == [201, 201]
    before = snapshot(app), rows(database_url)
    refused = upload(client, browser_envelope(team_keys))
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) == 180  # one token every 3 minutes
    assert "Nothing you sent before was affected" in refused.get_json()["error"]
    assert (snapshot(app), rows(database_url)) == before
    assert before[0].submissions == 2 and len(before[0].files) == 2


def test_the_form_without_javascript_comes_back_filled_in_under_overload(make_app, database_url):
    app = make_app(database_url, submissions_per_hour=10)  # a burst of 1
    client = app.test_client()
    assert post_plain(client, answers()).status_code == 200
    response = post_plain(client, answers(account="Kept while the portal is busy."))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "360"
    page = response.get_data(as_text=True)
    assert "Kept while the portal is busy." in page
    assert "more reports than it can take" in page
    assert snapshot(app).submissions == 1


def test_the_limit_is_per_application_and_pages_are_not_limited(make_app, sqlite_url, team_keys):
    first = make_app(sqlite_url, submissions_per_hour=10)
    second = make_app(sqlite_url, submissions_per_hour=10)
    client = first.test_client()
    assert upload(client, browser_envelope(team_keys)).status_code == 201
    assert upload(client, browser_envelope(team_keys)).status_code == 503
    for _ in range(20):
        assert client.get("/report").status_code == 200
    assert upload(second.test_client(), browser_envelope(team_keys)).status_code == 201


def test_the_decorator_limits_any_endpoint(make_app, sqlite_url):
    bp = Blueprint("chunks", __name__)

    @bp.post("/test-chunk")
    @ratelimit.limited("uploads")
    def chunk() -> tuple[str, int]:
        return "stored", 204

    app = make_app(sqlite_url, uploads_per_hour=20, max_files=2)  # a burst of max(2, 20 // 10)
    app.register_blueprint(bp)
    client = app.test_client()
    headers = {"X-CSRFToken": csrf_token(client)}
    codes = [client.post("/test-chunk", headers=headers).status_code for _ in range(3)]
    assert codes == [204, 204, 503]


def test_an_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown"):
        ratelimit.limited("everything")


def test_nothing_about_requests_is_written_to_disk(make_app, sqlite_url, data_dir, team_keys):
    app = make_app(sqlite_url, submissions_per_hour=10)
    client = app.test_client()
    upload(client, browser_envelope(team_keys))
    before = {p: p.stat().st_size for p in data_dir.rglob("*")}
    for _ in range(5):
        assert upload(client, browser_envelope(team_keys)).status_code == 503
    assert {p: p.stat().st_size for p in data_dir.rglob("*")} == before


def _thread_with(session, count: int, day: dt.date) -> str:
    thread = Thread(id="a" * 32, lookup_digest=b"d" * 32, reply_public_key=b"k" * 32,
                    created_on=day)  # fmt: skip
    session.add(thread)
    for i in range(count):
        session.add(Submission(id=f"{i:032x}", thread=thread, received_on=day,
                               sealed_by=SealedBy.BROWSER, padded_size=65536,
                               envelope_size=70000, recipient_key_ids="ab" * 16))  # fmt: skip
    session.commit()
    return thread.id


def test_per_thread_submissions_are_counted_from_the_rows(make_app, database_url):
    db = make_app(database_url).extensions["portal.source"].db
    today, yesterday = dt.date(2026, 11, 23), dt.date(2026, 11, 22)
    with db.session() as session:
        thread_id = _thread_with(session, 3, today)
        assert ratelimit.thread_submissions(session, thread_id, today) == 3
        assert ratelimit.thread_submissions(session, thread_id, yesterday) == 0
        ratelimit.check_thread(session, thread_id, today, 4)
        ratelimit.check_thread(session, thread_id, yesterday, 3)
        ratelimit.check_thread(session, thread_id, today, 0)  # 0: no limit
        with pytest.raises(Refused) as caught:
            ratelimit.check_thread(session, thread_id, today, 3)
    assert caught.value.status == 429
    assert "tomorrow" in caught.value.message
