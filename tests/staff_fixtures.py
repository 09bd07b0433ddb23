"""Fixtures and helpers for the staff interface: a controllable clock, apps, accounts.

Real Argon2id and real TOTP throughout: codes are computed from the account's
secret at the fixture clock's time, and the clock is moved, never slept on
(``staffauth.now`` is replaced for the test).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from source_fixtures import SECRET
from werkzeug.test import TestResponse

from portal import staffauth
from portal.config import Config
from portal.staff import create_app

START = 1_800_000_010.0  # ten seconds into a TOTP time step
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Account:
    name: str
    secret: bytes
    enrolment_secret: str | None
    password: str = PASSWORD

    def code(self, when: float) -> str:
        return staffauth.code_at(self.secret, when)


def decode_secret(provisioning: staffauth.Provisioning) -> bytes:
    text = provisioning.secret_base32
    return base64.b32decode(text + "=" * (-len(text) % 8))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock()
    monkeypatch.setattr(staffauth, "now", moving)
    return moving


def staff_config(data_dir: Path, url: str, **changes: Any) -> Config:
    config = Config(
        # The staff interface seals nothing; it reads only the manifest's signing keys, so
        # without a manifest it refuses every return bundle (make_staff_app gives it one).
        keys_manifest=data_dir / "no-manifest.json",
        data_dir=data_dir,
        database_url=url,
        secret_key=SECRET.encode(),
    )
    return replace(config, **changes)


@pytest.fixture
def make_staff_app(data_dir: Path, clock: Clock, team_keys: Any) -> Iterator[Callable[..., Flask]]:
    """``make_staff_app(url, **config_changes)``: the staff app on the test's data directory,
    reading the desk's signing key from the team manifest."""
    made: list[Flask] = []

    def make(url: str, **changes: Any) -> Flask:
        # Not in testing mode: errors are handled as in production, and CSRF is on.
        changes.setdefault("keys_manifest", team_keys.manifest)
        app = create_app(staff_config(data_dir, url, **changes))
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["portal.staff"].db.dispose()


@pytest.fixture
def staff_app(make_staff_app: Callable[..., Flask], database_url: str) -> Flask:
    """The staff app on SQLite; on PostgreSQL too for tests marked ``both_databases``."""
    return make_staff_app(database_url)


@pytest.fixture
def staff_client(staff_app: Flask) -> FlaskClient:
    return staff_app.test_client()


def add_account(app: Flask, name: str = "amina") -> Account:
    made = staffauth.add(app.extensions["portal.staff"].db, SECRET.encode(), name)
    return Account(name, decode_secret(made), made.enrolment_secret)


@pytest.fixture
def pending(staff_app: Flask) -> Account:
    """An account just made with `portal staff add`, not yet enrolled."""
    return add_account(staff_app)


@pytest.fixture
def account(staff_app: Flask, pending: Account, clock: Clock) -> Account:
    """An enrolled account; the clock has moved on to a step whose code is unused."""
    assert pending.enrolment_secret
    outcome = staffauth.enrol(
        staff_app.extensions["portal.staff"].db, SECRET.encode(), pending.name,
        pending.enrolment_secret, PASSWORD, pending.code(clock.now),
    )  # fmt: skip
    assert outcome.result is staffauth.Result.OK
    clock.advance(staffauth.TOTP_STEP)
    return pending


def form_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = CSRF.search(page)
    assert match, f"{path} has no CSRF token"
    return html.unescape(match.group(1))


def sign_in(
    client: FlaskClient,
    account: Account,
    clock: Clock,
    *,
    name: str | None = None,
    password: str | None = None,
    code: str | None = None,
    csrf: str | None = None,
) -> TestResponse:
    """POST the login form; by default with the account's right name, password and code."""
    return client.post(
        "/login",
        data={
            "csrf_token": csrf if csrf is not None else form_token(client),
            "name": name if name is not None else account.name,
            "password": password if password is not None else account.password,
            "code": code if code is not None else account.code(clock.now),
        },
    )


def enrol_form(
    client: FlaskClient, account: Account, clock: Clock, **overrides: str
) -> TestResponse:
    data = {
        "csrf_token": form_token(client, "/enrol"),
        "name": account.name,
        "enrolment_secret": account.enrolment_secret or "",
        "password": PASSWORD,
        "password_again": PASSWORD,
        "code": account.code(clock.now),
    }
    data.update(overrides)
    return client.post("/enrol", data=data)


def alert(response: TestResponse) -> str:
    """The text of the page's alert (the refusal's message)."""
    match = re.search(r'role="alert">([^<]*)<', response.get_data(as_text=True))
    assert match, "no alert on the page"
    return html.unescape(match.group(1))
