"""Staff enrolment, login, delays, lockout, sessions and logout (real Argon2id and TOTP)."""

from __future__ import annotations

from typing import Literal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from staff_fixtures import (
    CSRF,
    PASSWORD,
    alert,
    enrol_form,
    form_token,
    sign_in,
)
from werkzeug.test import TestResponse

from portal import staffauth
from portal.models import StaffState, StaffUser
from portal.source.security import CSP
from portal.staff import auth, errors, sessions
from portal.staffauth import LOCKOUT_AFTER, TOTP_STEP

from source_fixtures import SECRET  # isort: skip


def user_row(app, name="amina"):
    with app.extensions["portal.staff"].db.session() as session:
        return session.scalar(select(StaffUser).where(StaffUser.name == name))


# Enrolment ---------------------------------------------------------------------------


@pytest.mark.both_databases
def test_enrol_then_log_out_and_in_again(staff_client, staff_app, pending, clock):
    response = enrol_form(staff_client, pending, clock)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = staff_client.get("/")
    assert page.status_code == 200 and auth.ENROLLED in page.get_data(as_text=True)
    row = user_row(staff_app)
    assert row.state is StaffState.ACTIVE and row.enrolment_digest is None
    assert row.password_hash.startswith("$argon2id$")
    staff_client.post("/logout", data={"csrf_token": form_token(staff_client, "/")})
    assert staff_client.get("/").status_code == 302
    clock.advance(TOTP_STEP)
    response = sign_in(staff_client, pending, clock)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert staff_client.get("/").status_code == 200


@pytest.mark.both_databases
def test_the_enrolment_secret_works_once(staff_client, staff_app, pending, clock):
    assert enrol_form(staff_client, pending, clock).status_code == 302
    clock.advance(TOTP_STEP)
    other = staff_app.test_client()
    response = enrol_form(other, pending, clock, password="another password entirely",
                          password_again="another password entirely")  # fmt: skip
    assert response.status_code == 401 and alert(response) == auth.ENROL_FAILED
    assert staffauth.verify_password(user_row(staff_app).password_hash, PASSWORD)


def test_enrolment_refuses_a_short_or_mismatched_password(staff_client, staff_app, pending,
                                                          clock):  # fmt: skip
    short = enrol_form(staff_client, pending, clock, password="short", password_again="short")
    assert short.status_code == 400 and "at least 12 characters" in alert(short)
    mismatch = enrol_form(staff_client, pending, clock, password_again=PASSWORD + "!")
    assert mismatch.status_code == 400 and "not the same" in alert(mismatch)
    assert user_row(staff_app).state is StaffState.PENDING


def test_enrolment_refuses_a_wrong_secret_or_code(staff_client, staff_app, pending, clock):
    wrong_secret = enrol_form(staff_client, pending, clock, enrolment_secret="x" * 32)
    wrong_code = enrol_form(staff_client, pending, clock,
                            code=pending.code(clock.now + 5 * TOTP_STEP))  # fmt: skip
    for response in (wrong_secret, wrong_code):
        assert response.status_code == 401 and alert(response) == auth.ENROL_FAILED
    row = user_row(staff_app)
    assert row.state is StaffState.PENDING and row.failed_attempts == 2


def test_a_pending_account_cannot_log_in(staff_client, pending, clock):
    response = sign_in(staff_client, pending, clock)
    assert response.status_code == 401 and alert(response) == auth.LOGIN_FAILED


# Login -------------------------------------------------------------------------------


def test_wrong_password_and_wrong_code_get_the_same_answer(staff_client, account, clock):
    wrong_password = sign_in(staff_client, account, clock, password="not the password at all")
    wrong_code = sign_in(staff_client, account, clock,
                         code=account.code(clock.now + 3 * TOTP_STEP))  # fmt: skip
    for response in (wrong_password, wrong_code):
        assert response.status_code == 401
        assert alert(response) == auth.LOGIN_FAILED
        assert "portal_staff=" not in response.headers.get("Set-Cookie", "") or (
            staff_client.get("/").status_code == 302
        )
    assert staff_client.get("/").status_code == 302


def test_an_unknown_name_is_answered_like_a_wrong_password(staff_app, account, clock,
                                                           monkeypatch):  # fmt: skip
    verified = []

    class Spy(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            verified.append(hash)
            return super().verify(hash, password)

    monkeypatch.setattr(staffauth, "hasher", Spy())
    unknown = sign_in(staff_app.test_client(), account, clock, name="nobody")
    wrong = sign_in(staff_app.test_client(), account, clock, password="not the password at all")
    assert unknown.status_code == wrong.status_code == 401
    assert alert(unknown) == alert(wrong) == auth.LOGIN_FAILED
    assert without_token(unknown).replace("nobody", "amina") == without_token(wrong)
    # A dummy Argon2id hash is verified for the unknown name, as the real one is for amina.
    assert len(verified) == 2 and all(str(h).startswith("$argon2id$") for h in verified)


def without_token(response: TestResponse) -> str:
    """The page without its CSRF token (which differs every time)."""
    return CSRF.sub("", response.get_data(as_text=True))


@pytest.mark.both_databases
def test_a_used_code_is_refused(staff_app, account, clock):
    first = staff_app.test_client()
    assert sign_in(first, account, clock).status_code == 302
    second = staff_app.test_client()
    response = sign_in(second, account, clock)
    assert response.status_code == 401 and alert(response) == auth.LOGIN_FAILED


def test_codes_of_the_previous_and_next_steps_are_accepted_once(staff_app, account, clock):
    clock.advance(TOTP_STEP)  # the step before is not the one enrolment used
    previous = account.code(clock.now - TOTP_STEP)
    assert sign_in(staff_app.test_client(), account, clock, code=previous).status_code == 302
    assert sign_in(staff_app.test_client(), account, clock, code=previous).status_code == 401
    upcoming = account.code(clock.now + TOTP_STEP)
    assert sign_in(staff_app.test_client(), account, clock, code=upcoming).status_code == 302
    assert sign_in(staff_app.test_client(), account, clock, code=upcoming).status_code == 401
    # The current step is older than one already used: refused too.
    current = account.code(clock.now)
    assert sign_in(staff_app.test_client(), account, clock, code=current).status_code == 401


def test_codes_two_steps_away_are_refused(staff_client, account, clock):
    for offset in (-2, 2):
        code = account.code(clock.now + offset * TOTP_STEP)
        assert sign_in(staff_client, account, clock, code=code).status_code == 401


@pytest.mark.both_databases
def test_brute_force_meets_growing_delays_then_a_lockout(staff_app, account, clock):
    client = staff_app.test_client()
    waits = []
    for attempt in range(1, LOCKOUT_AFTER + 1):
        response = sign_in(client, account, clock, password=f"guess number {attempt:04d}")
        if attempt < LOCKOUT_AFTER:
            assert response.status_code == 401, attempt
            assert alert(response) == auth.LOGIN_FAILED
        else:
            assert response.status_code == 403 and alert(response) == auth.LOCKED
        delay = staffauth.delay_after(attempt)
        if delay and attempt < LOCKOUT_AFTER:
            # Too soon: refused without a check, even with everything right.
            early = sign_in(client, account, clock)
            assert early.status_code == 429
            assert early.headers["Retry-After"] == str(delay + 1)
            assert alert(early) == auth.WAIT.format(seconds=delay + 1)
            waits.append(delay)
            clock.advance(delay)
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert user_row(staff_app).failed_attempts == LOCKOUT_AFTER
    clock.advance(24 * 3600)
    locked = sign_in(client, account, clock)
    assert locked.status_code == 403 and alert(locked) == auth.LOCKED


def test_a_success_clears_the_failures(staff_app, account, clock):
    client = staff_app.test_client()
    for _ in range(2):
        sign_in(client, account, clock, password="not the password at all")
    assert sign_in(client, account, clock).status_code == 302
    row = user_row(staff_app)
    assert row.failed_attempts == 0 and row.locked_until == 0


def test_reset_totp_unlocks_with_a_new_secret(staff_app, account, clock):
    db = staff_app.extensions["portal.staff"].db
    with db.session() as session:
        row = session.scalar(select(StaffUser))
        row.failed_attempts = LOCKOUT_AFTER
        session.commit()
    client = staff_app.test_client()
    assert sign_in(client, account, clock).status_code == 403
    made = staffauth.reset_totp(db, SECRET.encode(), account.name)
    assert made.enrolment_secret is None  # already enrolled: the password stays
    from staff_fixtures import Account, decode_secret

    renewed = Account(account.name, decode_secret(made), None)
    assert sign_in(client, renewed, clock, code=account.code(clock.now)).status_code == 401
    assert sign_in(client, renewed, clock).status_code == 302
    assert client.get("/").status_code == 200


def test_the_totp_secret_is_encrypted_at_rest(staff_app, account):
    sealed = user_row(staff_app).totp_secret
    assert account.secret not in sealed
    assert staffauth.open_totp_secret(SECRET.encode(), account.name, sealed) == account.secret
    other_key = b"0123456789abcdef" * 4
    try:
        staffauth.open_totp_secret(other_key, account.name, sealed)
    except staffauth.AccountError as err:
        assert "reset-totp" in err.hint
    else:
        raise AssertionError("opened under another key")


def test_a_changed_secret_key_refuses_the_login_and_tells_the_operator(
    make_staff_app, sqlite_url, account, clock, caplog
):
    other = make_staff_app(sqlite_url, secret_key=b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFG")
    response = sign_in(other.test_client(), account, clock)
    assert response.status_code == 401 and alert(response) == auth.LOGIN_FAILED
    assert "run `portal staff reset-totp amina`" in caplog.text


# Sessions ----------------------------------------------------------------------------


def signed_in_client(staff_app, account, clock):
    client = staff_app.test_client()
    assert sign_in(client, account, clock).status_code == 302
    return client


def test_a_session_expires_after_15_idle_minutes(staff_app, account, clock):
    client = signed_in_client(staff_app, account, clock)
    clock.advance(sessions.IDLE_SECONDS - 1)
    assert client.get("/").status_code == 200  # and this request keeps it alive
    clock.advance(sessions.IDLE_SECONDS + 1)
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    assert "Your session has expired" in page
    assert client.get("/").status_code == 302


def test_a_session_ends_8_hours_after_login_however_busy(staff_app, account, clock):
    client = signed_in_client(staff_app, account, clock)
    for _ in range(sessions.ABSOLUTE_SECONDS // 600 - 1):
        clock.advance(600)
        assert client.get("/").status_code == 200
    clock.advance(601)
    assert client.get("/").status_code == 302


@pytest.mark.both_databases
def test_a_session_ends_when_the_account_is_removed_or_locked(staff_app, account, clock):
    client = signed_in_client(staff_app, account, clock)
    db = staff_app.extensions["portal.staff"].db
    with db.session() as session:
        session.scalar(select(StaffUser)).failed_attempts = LOCKOUT_AFTER
        session.commit()
    assert client.get("/").status_code == 302
    staffauth.remove(db, account.name)
    assert client.get("/").status_code == 302


def test_logout(staff_app, account, clock):
    client = signed_in_client(staff_app, account, clock)
    response = client.post("/logout", data={"csrf_token": form_token(client, "/")})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert auth.SIGNED_OUT in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302


@pytest.mark.both_databases
def test_a_copy_of_the_cookie_is_worthless_after_logout(staff_app, account, clock):
    client = signed_in_client(staff_app, account, clock)
    stolen = client.get_cookie("portal_staff").value
    client.post("/logout", data={"csrf_token": form_token(client, "/")})
    thief = staff_app.test_client()
    thief.set_cookie("portal_staff", stolen)
    assert thief.get("/").status_code == 302
    assert user_row(staff_app).session_digest is None


def test_a_new_login_or_a_totp_reset_ends_the_earlier_session(staff_app, account, clock):
    first = signed_in_client(staff_app, account, clock)
    clock.advance(TOTP_STEP)
    second = signed_in_client(staff_app, account, clock)
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 200
    db = staff_app.extensions["portal.staff"].db
    staffauth.reset_totp(db, SECRET.encode(), account.name)
    assert second.get("/").status_code == 302


def test_logout_needs_the_csrf_token(staff_app, account, clock):
    client = signed_in_client(staff_app, account, clock)
    response = client.post("/logout")
    assert response.status_code == 400 and alert(response) == errors.CSRF_EXPIRED
    assert client.get("/").status_code == 200


def test_every_page_but_login_and_enrolment_needs_a_session(staff_client):
    for path in ("/", "/nothing-here"):
        response = staff_client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert staff_client.get("/login").status_code == 200
    assert staff_client.get("/enrol").status_code == 200


# CSRF --------------------------------------------------------------------------------


def test_a_login_without_a_csrf_token_is_refused(staff_client, account, clock):
    response = staff_client.post(
        "/login", data={"name": account.name, "password": PASSWORD,
                        "code": account.code(clock.now)}
    )  # fmt: skip
    assert response.status_code == 400 and alert(response) == errors.CSRF_EXPIRED
    assert "<script" not in response.get_data(as_text=True)
    assert sign_in(staff_client, account, clock).status_code == 302  # the code was not used


def test_a_replayed_csrf_token_is_refused(staff_client, account, clock):
    token = form_token(staff_client)
    first = sign_in(staff_client, account, clock, csrf=token, password="not the password at all")
    assert first.status_code == 401
    replayed = sign_in(staff_client, account, clock, csrf=token)
    assert replayed.status_code == 400 and alert(replayed) == errors.CSRF_EXPIRED


def test_enrolment_needs_the_csrf_token(staff_client, staff_app, pending, clock):
    response = staff_client.post("/enrol", data={"name": pending.name})
    assert response.status_code == 400 and alert(response) == errors.CSRF_EXPIRED
    assert user_row(staff_app).state is StaffState.PENDING


def test_pages_need_no_javascript_and_carry_the_strict_headers(staff_app, account, clock):
    client = staff_app.test_client()
    pages = [client.get("/login"), client.get("/enrol")]
    sign_in(client, account, clock)
    pages.append(client.get("/"))
    for page in pages:
        assert page.status_code == 200
        assert "<script" not in page.get_data(as_text=True)
        assert page.headers["Content-Security-Policy"] == CSP
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.both_databases
def test_parallel_guesses_cannot_outrun_the_delays_or_the_lockout(
    staff_app, account, clock, monkeypatch
):
    """30 guesses in flight at once: at most LOCKOUT_AFTER are ever checked, then it locks.

    Parallelism is made deterministic: while each guess is inside its (slow) password
    check, the next one starts, so all of them are in flight before any has finished.
    """
    current = staff_app.extensions["portal.staff"]
    real_verify = staffauth.verify_password
    checked: list[int] = []
    outcomes: list[staffauth.Result] = []

    def guess() -> None:
        outcome = staffauth.login(current.db, current.secret_key, "amina", "wrong guess!!",
                                  account.code(clock.now))  # fmt: skip
        outcomes.append(outcome.result)

    def slow_verify(stored, password):
        checked.append(1)
        if len(outcomes) + len(checked) < 30:
            guess()  # another guess starts while this one is still being checked
        return real_verify(stored, password)

    monkeypatch.setattr(staffauth, "verify_password", slow_verify)
    guess()
    assert len(checked) <= LOCKOUT_AFTER
    assert staffauth.Result.WAIT in outcomes or staffauth.Result.LOCKED in outcomes
    assert all(result is not staffauth.Result.OK for result in outcomes)
    row = user_row(staff_app)
    assert row.failed_attempts <= LOCKOUT_AFTER
