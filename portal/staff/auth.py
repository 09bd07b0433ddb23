"""Enrolment, login and logout.

Every refusal of a login says the same thing, whatever was wrong (name,
password or code), with the same status; only a delay after failures and a
locked account are named as such, since the person has to know to wait or
to ask for a reset. Each form's CSRF token works once.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from portal import staffauth
from portal.source.security import rotate_csrf
from portal.staff import sessions, state
from portal.staffauth import Outcome, Result

bp = Blueprint("auth", __name__)

LOGIN_FAILED = "The name, password or code is not right. Check them and try again."
ENROL_FAILED = "The name, enrolment secret or code is not right. Check them and try again."
LOCKED = (
    "This account is locked after too many failed attempts. Ask the server's operator to"
    " unlock it with `portal staff reset-totp`; you will get a new TOTP secret."
)
WAIT = "Too many failed attempts. Wait {seconds} seconds, then try again."
ENROLLED = "Your account is ready and you are signed in."
SIGNED_OUT = "You are signed out."


def _field(name: str) -> str:
    return request.form.get(name, "")


def _refused(template: str, outcome: Outcome, failed: str) -> ResponseReturnValue:
    """The form again, with the reason for the refusal and its status."""
    name = _field("name")
    if outcome.result is Result.LOCKED:
        return render_template(template, problem=LOCKED, name=name), 403
    if outcome.result is Result.WAIT:
        message = WAIT.format(seconds=outcome.wait_seconds)
        headers = {"Retry-After": str(outcome.wait_seconds)}
        return render_template(template, problem=message, name=name), 429, headers
    return render_template(template, problem=failed, name=name), 401


@bp.get("/login")
def login() -> ResponseReturnValue:
    if sessions.signed_in() is not None:
        return redirect(url_for("dashboard.home"))
    return render_template("staff/login.html", problem=None, name="")


@bp.post("/login")
def login_submit() -> ResponseReturnValue:
    current = state.current()
    rotate_csrf()
    outcome = staffauth.login(
        current.db, current.secret_key, _field("name"), _field("password"), _field("code")
    )
    if outcome.result is not Result.OK or outcome.user_id is None:
        return _refused("staff/login.html", outcome, LOGIN_FAILED)
    sessions.start(outcome.user_id)
    return redirect(url_for("dashboard.home"))


@bp.get("/enrol")
def enrol() -> ResponseReturnValue:
    return render_template("staff/enrol.html", problem=None, name="")


@bp.post("/enrol")
def enrol_submit() -> ResponseReturnValue:
    current = state.current()
    rotate_csrf()
    problem = staffauth.password_problem(_field("password"), _field("password_again"))
    if problem is not None:
        return render_template("staff/enrol.html", problem=problem, name=_field("name")), 400
    outcome = staffauth.enrol(
        current.db,
        current.secret_key,
        _field("name"),
        _field("enrolment_secret"),
        _field("password"),
        _field("code"),
    )
    if outcome.result is not Result.OK or outcome.user_id is None:
        return _refused("staff/enrol.html", outcome, ENROL_FAILED)
    sessions.start(outcome.user_id)
    flash(ENROLLED)
    return redirect(url_for("dashboard.home"))


@bp.post("/logout")
def logout() -> Response:
    sessions.end()
    flash(SIGNED_OUT)
    return redirect(url_for("auth.login"))
