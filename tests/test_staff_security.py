"""The staff interface's cookie: its own name and key, its flags, and what it holds."""

from __future__ import annotations

import pytest
from itsdangerous import BadSignature
from source_fixtures import CSRF as CSRF_TOKEN
from staff_fixtures import add_account, alert, form_token, sign_in
from test_source_security import session_payload

from portal.staff import errors, security


def cookie_value(set_cookie: str) -> str:
    return set_cookie.split("=", 1)[1].split(";", 1)[0]


def staff_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("portal_staff=")]
    assert cookies, "no staff cookie was set"
    return cookies[-1]


def test_the_cookie_is_httponly_strict_and_named_for_staff(staff_client):
    cookie = staff_cookie(staff_client.get("/login")).lower()
    assert cookie.startswith(security.COOKIE_NAME + "=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie


def test_under_https_the_cookie_is_secure_and_enrolment_needs_no_referrer(
    make_staff_app, sqlite_url, clock
):
    app = make_staff_app(sqlite_url, https=True)
    pending = add_account(app)
    client = app.test_client()
    page = client.get("/enrol", base_url="https://staff.example/")
    assert "; secure" in staff_cookie(page).lower()
    token = CSRF_TOKEN.search(page.get_data(as_text=True)).group(1)
    response = client.post(
        "/enrol",
        base_url="https://staff.example/",
        data={"csrf_token": token, "name": pending.name,
              "enrolment_secret": pending.enrolment_secret, "password": pending.password,
              "password_again": pending.password, "code": pending.code(clock.now)},
    )  # fmt: skip
    assert response.status_code == 302, alert(response)


def test_the_session_holds_the_account_id_and_times_only(staff_app, account, clock):
    client = staff_app.test_client()
    response = sign_in(client, account, clock)
    payload = session_payload(staff_cookie(response))
    assert set(payload) == {"user", "token", "started", "seen"}
    assert account.name not in str(payload) and account.password not in str(payload)


def test_cookies_of_one_interface_are_not_accepted_by_the_other(staff_app, sqlite_app, account,
                                                                clock):  # fmt: skip
    staff = staff_app.test_client()
    staff_value = cookie_value(staff_cookie(sign_in(staff, account, clock)))
    source = sqlite_app.test_client()
    source_value = cookie_value(source.get("/report").headers["Set-Cookie"])
    staff_serializer = staff_app.session_interface.get_signing_serializer(staff_app)
    source_serializer = sqlite_app.session_interface.get_signing_serializer(sqlite_app)
    assert staff_serializer.loads(staff_value)["user"]
    with pytest.raises(BadSignature):
        source_serializer.loads(staff_value)
    with pytest.raises(BadSignature):
        staff_serializer.loads(source_value)

    # Over HTTP: the source cookie under the staff name opens no staff session...
    intruder = staff_app.test_client()
    intruder.set_cookie(security.COOKIE_NAME, source_value)
    assert intruder.get("/").status_code == 302
    # ...and a staff session's CSRF token, with its cookie, is refused by the source form.
    token = form_token(staff, "/")
    visitor = sqlite_app.test_client()
    visitor.set_cookie("portal_source", staff.get_cookie(security.COOKIE_NAME).value)
    refused = visitor.post("/report/plain", data={"csrf_token": token, "account": "x"})
    assert refused.status_code == 400


def test_a_forged_cookie_opens_no_session(staff_client):
    staff_client.set_cookie(security.COOKIE_NAME, "eyJ1c2VyIjoxfQ.forged.signature")
    response = staff_client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def test_errors_are_pages_with_a_message_and_the_headers(staff_client):
    response = staff_client.post("/login", data={"csrf_token": "nonsense"})
    assert response.status_code == 400 and alert(response) == errors.CSRF_EXPIRED
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    too_big = staff_client.post("/login", data={"csrf_token": "x" * (100 * 1024)})
    assert too_big.status_code == 413
