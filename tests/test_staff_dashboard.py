"""The page after login: counts, the oldest day and storage, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

from staff_fixtures import add_account, sign_in

from portal import staffauth, storage
from portal.models import SealedBy, Submission, Thread
from portal.staff import figures


def figure(page: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', page)
    assert match, f"no figure {name}"
    return match.group(1)


def enrolled(app, clock):
    account = add_account(app)
    db, secret = app.extensions["portal.staff"].db, staffauth_secret(app)
    code = account.code(clock.now)
    staffauth.enrol(db, secret, account.name, account.enrolment_secret, account.password, code)
    clock.advance(staffauth.TOTP_STEP)
    return account


def staffauth_secret(app) -> bytes:
    return app.extensions["portal.staff"].secret_key


def store_rows(app, days_and_sizes):
    """Rows and envelope files as the source interface leaves them (contents do not matter)."""
    data_dir = app.extensions["portal.staff"].config.data_dir
    storage.prepare(data_dir)
    ids = []
    with app.extensions["portal.staff"].db.session() as session:
        for day, size in days_and_sizes:
            thread = Thread(id=storage.new_id(), lookup_digest=storage.new_id().encode()[:32],
                            reply_public_key=bytes(32), created_on=day)  # fmt: skip
            submission = Submission(id=storage.new_id(), thread=thread, received_on=day,
                                    sealed_by=SealedBy.BROWSER, padded_size=size - 100,
                                    envelope_size=size, recipient_key_ids="ab" * 16)  # fmt: skip
            session.add_all([thread, submission])
            storage.envelope_path(data_dir, submission.id).write_bytes(b"x" * size)
            ids.append(submission.id)
        session.commit()
    return ids


def test_the_dashboard_shows_counts_and_no_submitter_data(make_staff_app, database_url, clock):
    app = make_staff_app(database_url)
    account = enrolled(app, clock)
    client = app.test_client()
    sign_in(client, account, clock)
    empty = client.get("/").get_data(as_text=True)
    assert figure(empty, "waiting") == "0"
    assert figure(empty, "oldest") == "none"
    assert figure(empty, "storage") == "0 bytes"

    ids = store_rows(app, [(dt.date(2026, 11, 3), 3000), (dt.date(2026, 10, 30), 1000)])
    page = client.get("/").get_data(as_text=True)
    assert figure(page, "waiting") == "2"
    assert figure(page, "oldest") == "2026-10-30"
    assert figure(page, "storage") == "3.9 KiB"
    for secret in [*ids, "ab" * 16, "2026-11-03"]:
        assert secret not in page


def test_sizes_read_as_people_read_them(tmp_path):
    assert figures.human_size(0) == "0 bytes"
    assert figures.human_size(1023) == "1023 bytes"
    assert figures.human_size(1536) == "1.5 KiB"
    assert figures.human_size(5 * 1024**3) == "5.0 GiB"
    assert figures.directory_size(tmp_path / "absent") == 0
