"""Errors as a page that says what to do; never a 500 for bad input, never an echo of it."""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

CSRF_EXPIRED = (
    "This form is out of date or was already sent, so nothing was done. Reload the page"
    " and try again."
)
MESSAGES = {
    400: "The request was not understood. Reload the page and try again.",
    404: "There is no page at this address.",
    405: "This page cannot be used that way. Go back and try again.",
    413: "The form sent was larger than this page accepts.",
    500: "Something went wrong on the server. Please try again later.",
}


def http_error(err: HTTPException) -> tuple[str, int]:
    status = err.code or 500
    if isinstance(err, CSRFError):
        status, message = 400, CSRF_EXPIRED
    else:
        message = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    return render_template("staff/error.html", status=status, message=message), status


def init(app: Flask) -> None:
    # An unhandled error also reaches http_error, as a 500, once Flask has logged it.
    app.register_error_handler(HTTPException, http_error)
