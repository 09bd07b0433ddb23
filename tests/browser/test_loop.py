"""The whole loop in real Chromium, with JavaScript and without, against real processes.

`portal serve source` and `portal serve staff` run as subprocesses on
127.0.0.1 over one data directory and database (SQLite, and PostgreSQL once
with JavaScript); the staff account is
made with `portal staff add` and enrolled on the staff pages with a TOTP code
computed from the provisioning URI it printed; the desk is `portal-desk` with
a real key file and passphrase. The loop: submit -> staff login (password and
TOTP) -> export download -> desk import -> reply -> return -> return upload
-> the submitter reads the reply with the receipt -> follow-up -> next export
-> desk import shows the follow-up -> return -> upload. After each purge the
database (every table, every column), the data directory (every file, byte by
byte) and the servers' output are searched for every trace of the purged
reports: only their thread row may stay, which replies need; after the last
one, the reply too is gone (read, and a return bundle applied since). The
return bundles are signed with a signing key made by `portal-desk keygen
--signing`, listed in the manifest both servers read. A replayed return
bundle changes nothing.

Then the staff login's refusals in Chromium: a wrong password, a wrong code,
a reused code, and guessing until the lockout. Those run the staff app in a
thread of this process on 127.0.0.1, so that the test's clock (``staffauth.now``
replaced) moves past the growing delays instead of sleeping through them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from harness import Team
from loop_helpers import (
    STAFF_PASSWORD,
    Authenticator,
    NewAccount,
    Rows,
    add_staff,
    desk,
    envelope_needles,
    environment,
    found_in_files,
    found_in_rows,
    portal,
    running,
    serving_in_thread,
    table_rows,
)
from pg import PostgresServer
from playwright.sync_api import Page, Request
from source_fixtures import SECRET
from staff_fixtures import Account, Clock
from test_submit import RECEIPT, expected_fields, fill

from portal import bundle, receipt, replykey, returnbundle, staffauth
from portal.config import DATABASE_NAME

MODES = ("normal", "no-js")
ENROLLED = "Your account is ready and you are signed in."
LOGIN_FAILED = "The name, password or code is not right. Check them and try again."


@dataclass(frozen=True)
class Desk:
    """The desk's files: the recipient key, the signing key, their passphrases, the manifest
    (both keys' public entries) and the case store's directory."""

    key_file: Path
    passphrase_file: Path
    sign_key: Path
    sign_passphrase: Path
    sign_public: bytes
    manifest_dir: Path
    store: Path


@dataclass(frozen=True)
class Loop:
    source: str
    staff: str
    data_dir: Path
    database: str  # its URL
    env: dict[str, str]
    logs: tuple[Path, ...]
    desk: Desk


def make_desk(team: Team, root: Path) -> Desk:
    """The team's recipient key, and a signing key made with `portal-desk keygen --signing`;
    the manifest the servers read lists both."""
    root.mkdir()
    sign_key, sign_passphrase = root / "signing.key", root / "signing.passphrase"
    sign_passphrase.write_text("the loop's signing key passphrase\n", encoding="utf-8")
    printed = desk("keygen", "--signing", "--label", "Loop test signing key",
                   "--secret-key", sign_key, "--passphrase-file", sign_passphrase)  # fmt: skip
    manifest = json.loads((team.manifest_dir / "manifest.json").read_text(encoding="utf-8"))
    entry = json.loads(printed.stdout)
    manifest["signing_keys"] = [entry]
    (root / "keys").mkdir()
    (root / "keys" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    public = base64.b64decode(entry["public_key"])
    return Desk(team.key_file, team.passphrase_file, sign_key, sign_passphrase, public,
                root / "keys", root / "store")  # fmt: skip


@pytest.fixture
def loop_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The servers' database URL: SQLite in the data directory (the default), or a new
    database on the tests' PostgreSQL server, dropped afterwards."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / DATABASE_NAME}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def loop(tmp_path: Path, team: Team, loop_database: str) -> Iterator[Loop]:
    """Both interfaces as `portal serve` subprocesses over one data directory and database."""
    data_dir, keys = tmp_path / "data", make_desk(team, tmp_path / "desk")
    settings = {"PORTAL_SECRET_KEY": secrets.token_urlsafe(48), "PORTAL_KEYS":
                str(keys.manifest_dir), "PORTAL_DATA_DIR": str(data_dir),
                "DATABASE_URL": loop_database}  # fmt: skip
    env = environment(settings)
    portal(env, "db", "upgrade")
    logs = tmp_path / "source.log", tmp_path / "staff.log"
    with running("source", env, logs[0]) as source, running("staff", env, logs[1]) as staff:
        yield Loop(source, staff, data_dir, loop_database, env, logs, keys)


# The submitter --------------------------------------------------------------------------


def submit(page: Page, loop: Loop, marker: str, mode: str) -> str:
    """Send a report with ``marker`` in its account; the receipt as shown."""
    page.goto(f"{loop.source}/report")
    fill(page, expected_fields(marker))
    if mode == "no-js":
        page.check('[name="server_seal_consent"]')
    page.click('#report-form button[type="submit"]:visible')
    shown = page.locator("[data-receipt]").first
    shown.wait_for(state="visible", timeout=60_000)
    text = shown.inner_text().strip()
    assert RECEIPT.fullmatch(text), text
    return text


def ask_for_replies(page: Page, loop: Loop, shown: str) -> None:
    page.goto(f"{loop.source}/replies")
    page.fill('[name="receipt"]', shown)
    page.click('[data-replies-form] button[type="submit"]')


def find_no_replies(page: Page, loop: Loop, shown: str) -> None:
    """Ask for replies with the receipt and get the neutral answer that there are none."""
    ask_for_replies(page, loop, shown)
    page.get_by_text("There are no replies for this receipt").first.wait_for(timeout=30_000)
    assert page.locator("[data-reply-text]").count() == 0


def record_requests(page: Page) -> list[bytes]:
    """Every request the page sends: URL, headers and body, as bytes."""
    sent: list[bytes] = []

    def record(request: Request) -> None:
        head = request.url + json.dumps(request.headers)
        sent.append(head.encode() + (request.post_data_buffer or b""))

    page.on("request", record)
    return sent


def read_replies(page: Page, loop: Loop, shown: str) -> list[str]:
    ask_for_replies(page, loop, shown)
    page.wait_for_selector("[data-reply-text]", timeout=30_000)
    return page.locator("[data-reply-text]").all_inner_texts()


def send_followup(page: Page, loop: Loop, shown: str, text: str, mode: str) -> None:
    page.goto(f"{loop.source}/followup")
    page.fill("#field-receipt", shown)
    page.fill("#field-account", text)
    page.check('[name="consent_publication"][value="no"]')
    if mode == "no-js":
        page.check('[name="server_seal_consent"]')
    page.click('#followup-form button[type="submit"]:visible')
    page.locator("[data-followup-sent]").first.wait_for(state="visible", timeout=60_000)


# Staff ----------------------------------------------------------------------------------


def enrol(page: Page, url: str, account: NewAccount) -> None:
    page.goto(f"{url}/enrol")
    page.fill("#name", account.name)
    page.fill("#enrolment_secret", account.enrolment_secret)
    page.fill("#password", STAFF_PASSWORD)
    page.fill("#password_again", STAFF_PASSWORD)
    page.fill("#code", account.authenticator.code())
    page.click('button:text("Enrol")')
    assert page.inner_text('[role="status"]') == ENROLLED
    page.click('button:text("Sign out")')
    assert page.inner_text("h1") == "Sign in"


def sign_in(page: Page, url: str, name: str, password: str, code: str) -> int:
    """Post the login form; the status of the answer."""
    page.goto(f"{url}/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.fill("#code", code)
    with page.expect_navigation() as answer:
        page.click('button:text("Sign in")')
    response = answer.value
    assert response is not None
    return response.status


def alert(page: Page) -> str:
    return page.inner_text('[role="alert"]')


def figures(page: Page) -> dict[str, str]:
    names = ("waiting", "new", "exported", "unread_replies")
    return {n: page.inner_text(f'[data-figure="{n}"]') for n in names}


def download_export(page: Page, path: Path) -> bundle.Bundle:
    with page.expect_download() as info:
        page.click('button:text("Download the export bundle")')
    download = info.value
    assert re.fullmatch(r"reprisals-export-\d{4}-\d\d-\d\d\.tar", download.suggested_filename)
    download.save_as(path)
    return bundle.read_export(path)


def upload_return(page: Page, path: Path) -> str:
    page.set_input_files("#bundle", str(path))
    page.click('button:text("Upload the return bundle")')
    return page.inner_text('[data-result="return"]')


def upload_refused(page: Page, path: Path) -> str:
    """Upload a return bundle the server must refuse (409); its message."""
    page.set_input_files("#bundle", str(path))
    with page.expect_navigation() as answer:
        page.click('button:text("Upload the return bundle")')
    assert answer.value is not None and answer.value.status == 409
    assert page.locator("[data-result]").count() == 0
    return alert(page)


# The desk -------------------------------------------------------------------------------


def desk_import(loop: Loop, path: Path) -> str:
    keys = loop.desk
    done = desk("import", "--store", keys.store, "--secret-key", keys.key_file,
                "--passphrase-file", keys.passphrase_file, path)  # fmt: skip
    return done.stderr


def desk_return(loop: Loop, path: Path) -> returnbundle.ReturnBundle:
    keys = loop.desk
    desk("return", "--store", keys.store, "--sign-key", keys.sign_key,
         "--passphrase-file", keys.sign_passphrase, "-o", path)  # fmt: skip
    return returnbundle.parse(path.read_bytes(), [keys.sign_public])


# What may stay ---------------------------------------------------------------------------


def assert_purged(loop: Loop, needles: dict[str, bytes], thread_id: str) -> Rows:
    """No needle in any column of any row, nor in any file of the data directory, nor in
    the servers' output; no submission row left; the thread row kept. The rows."""
    rows = table_rows(loop.database)
    assert found_in_rows(rows, needles) == []
    assert found_in_files(loop.data_dir, needles) == []
    for log in loop.logs:
        output = log.read_bytes()
        assert [n for n, needle in needles.items() if needle in output] == []
        assert b"127.0.0.1" not in output, "a server's output names a client address"
    assert rows["submissions"] == []
    assert [row["id"] for row in rows["threads"]] == [thread_id]
    return rows


def report_needles(
    name: str, item: bundle.Item, data: bytes, text: str, shown: str
) -> dict[str, bytes]:
    """What would betray report ``name``: its text, id, digest, ciphertext, the receipt."""
    token = receipt.lookup_token(shown)
    found = {
        "text": text.encode(),
        "submission id": item.id.encode(),
        "envelope digest": item.sha256,
        "envelope digest in hex": item.sha256.hex().encode(),
        "receipt": shown.encode(),
        "receipt digits": shown.replace(" ", "").encode(),
        "lookup token": token,
        "lookup token in hex": token.hex().encode(),
        **envelope_needles("envelope", data),
    }
    return {f"{name}: {what}": needle for what, needle in found.items()}


def reply_needles(reply: returnbundle.Reply) -> dict[str, bytes]:
    found = {"reply id": reply.id.encode(), "reply signature": reply.signature}
    return found | envelope_needles("reply", reply.envelope)


# The loop -------------------------------------------------------------------------------


def staff_signs_in(page: Page, loop: Loop) -> None:
    """`portal staff add`, enrolment on the staff pages, sign out, sign in: the dashboard."""
    account = add_staff(loop.env, "amina")
    enrol(page, loop.staff, account)
    code = account.authenticator.code()
    assert sign_in(page, loop.staff, account.name, STAFF_PASSWORD, code) == 200
    assert page.inner_text("h1") == "Overview"


def export_to_desk(page: Page, loop: Loop, path: Path) -> tuple[bundle.Item, bytes]:
    """Download the export (one item) and import it on the desk; the item and its bytes."""
    with download_export(page, path) as exported:
        (item,) = exported.items
        data = exported.read(item)
    page.goto(f"{loop.staff}/")
    assert figures(page) == {"waiting": "1", "new": "0", "exported": "1", "unread_replies": "0"}
    assert "1 items imported" in desk_import(loop, path)
    return item, data


def return_to_server(page: Page, loop: Loop, path: Path) -> tuple[returnbundle.ReturnBundle, str]:
    """Write the return bundle on the desk and upload it; the bundle and the result shown."""
    returned = desk_return(loop, path)
    result = upload_return(page, path)
    assert figures(page)["waiting"] == "0"
    return returned, result


# Both browser modes on SQLite (the default); on PostgreSQL too, with JavaScript. PostgreSQL's
# own files are not searched: it keeps deleted rows as dead tuples and in its WAL until they
# are vacuumed and recycled (SECURITY.md, known weaknesses); its rows are.
@pytest.mark.parametrize(
    ("mode", "loop_database"),
    [("normal", "sqlite"), ("no-js", "sqlite"), ("normal", "postgresql")],
    indirect=["loop_database"],
)
def test_the_whole_loop_leaves_no_trace_of_the_report(loop: Loop, browser_for: Any, mode: str,
                                                     tmp_path: Path) -> None:  # fmt: skip
    marker, answer = f"LOOP-{uuid.uuid4().hex}", f"Reply {uuid.uuid4().hex}: received, Журналист."
    submitter, staff = browser_for(mode).new_page(), browser_for(mode).new_page()
    sent = record_requests(submitter)

    # A report; staff sign in; export; the desk imports it, replies and returns.
    shown = submit(submitter, loop, marker, mode)
    staff_signs_in(staff, loop)
    assert figures(staff) == {"waiting": "1", "new": "1", "exported": "0", "unread_replies": "0"}
    item, data = export_to_desk(staff, loop, tmp_path / "export-1.tar")
    assert item.thread_id in desk("cases", "--store", loop.desk.store).stdout
    assert marker in desk("show", "--store", loop.desk.store, item.thread_id).stdout
    desk_reply(loop, item.thread_id, answer)
    returned, result = return_to_server(staff, loop, tmp_path / "return-1.tar")
    assert [(a.id, a.sha256) for a in returned.acknowledgements] == [(item.id, item.sha256)]
    (reply,) = returned.replies
    assert "1 acknowledged submission deleted" in result and "1 reply stored" in result

    # The submitter reads the reply with the receipt.
    assert figures(staff)["unread_replies"] == "1"
    assert read_replies(submitter, loop, shown) == [answer]
    staff.goto(f"{loop.staff}/")
    assert figures(staff)["unread_replies"] == "0"

    # No trace of the report; its thread and the reply (sealed, not readable here) stay.
    needles = report_needles("report", item, data, marker, shown)
    needles["reply text"] = answer.encode()
    rows = assert_purged(loop, needles, item.thread_id)
    today = dt.datetime.now(dt.UTC).date()
    read = [(r["id"], r["thread_id"], r["read_on"]) for r in rows["replies"]]
    assert read == [(reply.id, item.thread_id, today)]
    files = sorted(str(p.relative_to(loop.data_dir)) for p in loop.data_dir.rglob("*.env"))
    assert files == [f"replies/{reply.id}.env"]

    # A follow-up in the same thread (more information, less consent), exported alone; the
    # desk files it under the case and shows it once as unread.
    more = f"FOLLOW-UP-{uuid.uuid4().hex}: they came back."
    send_followup(submitter, loop, shown, more, mode)
    staff.goto(f"{loop.staff}/")
    assert figures(staff) == {"waiting": "1", "new": "1", "exported": "0", "unread_replies": "0"}
    second, second_data = export_to_desk(staff, loop, tmp_path / "export-2.tar")
    assert second.thread_id == item.thread_id and second.id != item.id
    assert "[1 unread follow-up]" in desk("cases", "--store", loop.desk.store).stdout
    case = desk("show", "--store", loop.desk.store, item.thread_id).stdout
    assert f"Item {second.id}: FOLLOW-UP" in case and more in case and marker in case
    assert "Consent changed to" in case
    assert "unread follow-up" not in desk("cases", "--store", loop.desk.store).stdout

    # The next return acknowledges the follow-up alone; the upload purges it.
    returned, result = return_to_server(staff, loop, tmp_path / "return-2.tar")
    assert [(a.id, a.sha256) for a in returned.acknowledgements] == [(second.id, second.sha256)]
    assert returned.replies == ()
    assert "1 acknowledged submission deleted" in result and "0 replies stored" in result
    needles |= report_needles("follow-up", second, second_data, more, shown)
    assert_purged(loop, needles, item.thread_id)

    # With JavaScript the browser sealed both and opened the reply: no request carried a text
    # or the receipt (without it, the form posted them, by the submitter's explicit choice).
    if mode != "no-js":
        private = [marker, more, shown, shown.replace(" ", "")]
        assert sent and [t for t in private if any(t.encode() in r for r in sent)] == []

    # The reply was read and the desk has acknowledged the next bundle: it goes too, but for
    # its random id, kept alone (no thread, no day) so that a replayed bundle cannot store it
    # again (SECURITY.md weakness 30).
    traces = {k: v for k, v in reply_needles(reply).items() if k != "reply id"}
    rows = assert_purged(loop, needles | traces, item.thread_id)
    assert rows["replies"] == []
    assert rows["deleted_replies"] == [{"id": reply.id}]
    assert found_in_rows({t: r for t, r in rows.items() if t != "deleted_replies"},
                         {"reply id": reply.id.encode()}) == []  # fmt: skip
    files = [p.relative_to(loop.data_dir) for p in loop.data_dir.rglob("*") if p.is_file()]
    assert files == ([Path(DATABASE_NAME)] if loop.database.startswith("sqlite") else [])
    # What stays: the thread (what a receipt finds, and the key replies are sealed to), the
    # staff account, the schema's revision and the deleted reply's id. Nothing else has a row.
    assert {t: len(r) for t, r in rows.items() if r} == {
        "alembic_version": 1, "staff_users": 1, "threads": 1, "deleted_replies": 1}  # fmt: skip
    (thread,) = rows["threads"]
    assert set(thread) == {"id", "lookup_digest", "reply_public_key", "created_on"}
    # The reply key stays, masked under the server's secret: the clear key follows from the
    # receipt, so a copy of the database without the secret must not hold it.
    mask_key = replykey.mask_key(loop.env["PORTAL_SECRET_KEY"].encode())
    clear, stored = receipt.reply_public_key(shown), bytes(thread["reply_public_key"])
    assert stored != clear
    assert replykey.unmask(mask_key, bytes(thread["lookup_digest"]), stored) == clear
    assert thread["created_on"] == today

    # The submitter finds no reply any more, and the dashboard has nothing to count.
    find_no_replies(submitter, loop, shown)
    staff.goto(f"{loop.staff}/")
    assert figures(staff) == {"waiting": "0", "new": "0", "exported": "0", "unread_replies": "0"}
    assert staff.inner_text('[data-figure="oldest"]') == "none"

    # The first return bundle again (a replay): refused whole, nothing changes.
    problem = upload_refused(staff, tmp_path / "return-1.tar")
    assert "most likely uploaded before" in problem
    assert table_rows(loop.database) == rows


def desk_reply(loop: Loop, thread_id: str, text: str) -> None:
    desk("reply", "--store", loop.desk.store, "--message", text,
         "--to", loop.desk.manifest_dir / "manifest.json", thread_id)  # fmt: skip


def test_a_replayed_bundle_of_replies_changes_nothing_after_they_were_deleted(
    loop: Loop, browser_for: Any, tmp_path: Path
) -> None:
    submitter, staff = browser_for("normal").new_page(), browser_for("normal").new_page()
    shown = submit(submitter, loop, f"LOOP-{uuid.uuid4().hex}", "normal")
    staff_signs_in(staff, loop)
    item, _ = export_to_desk(staff, loop, tmp_path / "export.tar")
    return_to_server(staff, loop, tmp_path / "acknowledgement.tar")

    # A bundle of one reply; read; another bundle since deletes it.
    desk_reply(loop, item.thread_id, "The first answer.")
    _, result = return_to_server(staff, loop, tmp_path / "first.tar")
    assert "0 acknowledged submissions deleted" in result and "1 reply stored" in result
    assert read_replies(submitter, loop, shown) == ["The first answer."]
    desk_reply(loop, item.thread_id, "The second answer.")
    return_to_server(staff, loop, tmp_path / "second.tar")
    before = table_rows(loop.database)
    assert [r["read_on"] for r in before["replies"]] == [None]  # the second only

    # The first bundle again: refused, and the reply read and deleted stays deleted.
    problem = upload_refused(staff, tmp_path / "first.tar")
    assert "uploaded before" in problem
    assert table_rows(loop.database) == before


# Logging in, refused ---------------------------------------------------------------------


@pytest.fixture
def staff_url(staff_app: Flask) -> Iterator[str]:
    """The staff app (SQLite in the test's data directory) on 127.0.0.1, in this process."""
    with serving_in_thread(staff_app) as url:
        yield url


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_password_a_wrong_code_and_a_reused_code_are_refused(
    staff_url: str, account: Account, clock: Clock, browser_for: Any, mode: str
) -> None:
    page = browser_for(mode).new_page()
    code = account.code(clock.now)
    assert sign_in(page, staff_url, account.name, "not the password at all", code) == 401
    assert alert(page) == LOGIN_FAILED
    window = {account.code(clock.now + s * staffauth.TOTP_STEP) for s in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in window)
    assert sign_in(page, staff_url, account.name, account.password, wrong) == 401
    assert alert(page) == LOGIN_FAILED
    assert page.locator("[data-figure]").count() == 0

    # The right password and code sign in; the same code a second time does not.
    assert sign_in(page, staff_url, account.name, account.password, code) == 200
    assert page.inner_text("h1") == "Overview"
    page.click('button:text("Sign out")')
    assert sign_in(page, staff_url, account.name, account.password, code) == 401
    assert alert(page) == LOGIN_FAILED
    page.goto(f"{staff_url}/")
    assert page.inner_text("h1") == "Sign in"
    clock.advance(staffauth.TOTP_STEP)
    assert sign_in(page, staff_url, account.name, account.password, account.code(clock.now)) == 200
    assert page.inner_text("h1") == "Overview"


def test_guessing_meets_growing_delays_then_a_lockout_only_the_operator_lifts(
    staff_url: str, account: Account, clock: Clock, browser_for: Any, data_dir: Path
) -> None:
    page = browser_for("normal").new_page()
    for failures in range(1, staffauth.LOCKOUT_AFTER):
        assert sign_in(page, staff_url, account.name, f"guess {failures}", "123456") == 401
        assert alert(page) == LOGIN_FAILED
        delay = staffauth.delay_after(failures)
        if delay:
            # Too soon: refused unchecked, with the time to wait; it does not count.
            right = account.code(clock.now)
            assert sign_in(page, staff_url, account.name, account.password, right) == 429
            assert (
                alert(page)
                == f"Too many failed attempts. Wait {delay + 1} seconds, then try again."
            )
            clock.advance(delay)
    assert sign_in(page, staff_url, account.name, "the last guess", "123456") == 403
    assert "This account is locked" in alert(page)
    clock.advance(3600)
    assert sign_in(page, staff_url, account.name, account.password, account.code(clock.now)) == 403
    assert "portal staff reset-totp" in alert(page)

    # The operator resets the TOTP secret on the command line; the new one signs in.
    env = environment({"PORTAL_SECRET_KEY": SECRET, "PORTAL_DATA_DIR": str(data_dir),
                       "PORTAL_KEYS": str(data_dir / "no-manifest.json")})  # fmt: skip
    printed = portal(env, "staff", "reset-totp", account.name)
    (uri,) = re.findall(r"^\s+(otpauth://\S+)$", printed, re.MULTILINE)
    fresh = Authenticator.from_uri(uri).secret
    old = account.code(clock.now)
    assert sign_in(page, staff_url, account.name, account.password, old) == 401
    code = staffauth.code_at(fresh, clock.now)
    assert sign_in(page, staff_url, account.name, account.password, code) == 200
    assert page.inner_text("h1") == "Overview"
