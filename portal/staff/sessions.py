"""Login sessions: who is signed in, and for how long.

The session (a signed cookie) holds the account id, a random token whose
digest the account's row keeps (so that logging out ends the session on the
server too, and a copied cookie is worth nothing afterwards), when the
login happened and when the last request came. It ends after 15 minutes without a request
and 8 hours after the login, whichever comes first; every page but the
login, enrolment and static files needs a live session and an account that
is still active and not locked, and otherwise sends the browser to the
login page. Times come from ``staffauth.now`` so that the tests can move
the clock.
"""

from __future__ import annotations

from flask import Flask, flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from portal import staffauth
from portal.staff import state

IDLE_SECONDS = 15 * 60
ABSOLUTE_SECONDS = 8 * 60 * 60
PUBLIC_ENDPOINTS = frozenset(
    {"auth.login", "auth.login_submit", "auth.enrol", "auth.enrol_submit", "auth.logout", "static"}
)
USER, TOKEN, STARTED, SEEN = "user", "token", "started", "seen"


def start(user_id: int) -> None:
    """Begin a new session for ``user_id`` (anything in the old one is forgotten)."""
    token = staffauth.start_session(state.current().db, user_id)
    moment = int(staffauth.now())
    session.clear()
    session.update({USER: user_id, TOKEN: token, STARTED: moment, SEEN: moment})


def end() -> None:
    """Forget the session here and on the server."""
    user_id, token = session.get(USER), session.get(TOKEN)
    if isinstance(user_id, int) and isinstance(token, str):
        staffauth.end_session(state.current().db, user_id, token)
    session.clear()


def expired(started: int, seen: int, moment: float) -> bool:
    return moment - seen > IDLE_SECONDS or moment - started > ABSOLUTE_SECONDS


def signed_in() -> int | None:
    """The id of the account signed in to this session, if it is alive; refreshes it."""
    user_id, token = session.get(USER), session.get(TOKEN)
    started, seen = session.get(STARTED), session.get(SEEN)
    if not (isinstance(user_id, int) and isinstance(token, str)):
        return None
    if not (isinstance(started, int) and isinstance(seen, int)):
        return None
    moment = staffauth.now()
    if expired(started, seen, moment):
        end()
        flash("Your session has expired. Sign in again.")
        return None
    if staffauth.session_user(state.current().db, user_id, token) is None:
        session.clear()
        return None
    session[SEEN] = int(moment)
    return user_id


def require_login() -> ResponseReturnValue | None:
    """Send the browser to the login page unless a live session is signed in."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if signed_in() is None:
        return redirect(url_for("auth.login"))
    return None


def init(app: Flask) -> None:
    app.before_request(require_login)
