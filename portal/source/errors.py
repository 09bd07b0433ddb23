"""Errors a person can act on: an HTML page, or JSON for the browser's upload.

Every error says what happened and what to do, in the submitter's
language, and never echoes what was sent. Bad input is a 4xx; a 500 is a
bug, logged by type and stack frames only (see ``logs``).
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.report import N_
from portal.source.i18n import translate
from portal.source.upload import Refused

CSRF_EXPIRED = N_(
    "This form is out of date or was already sent, so nothing was stored. Copy what you"
    " wrote somewhere safe, reload the form and send it again."
)
JSON_ENDPOINTS = frozenset({"sealed.submit", "replies.sealed", "followup.sealed"})
MESSAGES = {
    400: N_(
        "The request was not understood, so nothing was stored. Reload the page and try again."
    ),
    404: N_("There is no page at this address."),
    405: N_("This page cannot be used that way. Go back to the form and try again."),
    413: N_("The report is larger than this portal accepts, so nothing was stored."),
    415: N_(
        "The report was sent in a form this portal does not accept, so nothing was stored."
        " Reload the form and send it again."
    ),
    500: N_("Something went wrong on the server, so nothing was stored. Please try again later."),
    503: N_("The portal cannot accept reports at the moment. Please try again later."),
}


def respond(status: int, message: str) -> Response | tuple[str, int]:
    """The error ``message`` (marked for translation) as JSON or a page, with ``status``."""
    text = translate(message)
    if request.blueprint in {"sealed", "uploads"} or request.endpoint in JSON_ENDPOINTS:
        response = jsonify(error=text)
        response.status_code = status
        return response
    return render_template("source/error.html", status=status, message=text), status


def http_error(err: HTTPException) -> Response | tuple[str, int]:
    status = err.code or 500
    if isinstance(err, CSRFError):
        return respond(400, CSRF_EXPIRED)
    return respond(status, MESSAGES.get(status, MESSAGES[400 if status < 500 else 500]))


def refused(err: Refused) -> Response | tuple[str, int]:
    return respond(err.status, err.message)


def init(app: Flask) -> None:
    app.register_error_handler(HTTPException, http_error)
    # An unhandled error also reaches http_error, as a 500, once Flask has logged it.
    app.register_error_handler(Refused, refused)
