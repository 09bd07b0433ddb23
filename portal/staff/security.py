"""Response headers, cookie flags and CSRF for the staff interface.

The same headers as the source interface (its strict CSP, no referrer, no
framing, ``Cache-Control: no-store`` on every page) and the same cookie
flags (HttpOnly, SameSite=Strict, Secure under HTTPS), under another cookie
name. Every POST needs a CSRF token, and a token is accepted once only.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from portal.source.security import add_headers

COOKIE_NAME = "portal_staff"

csrf = CSRFProtect()


def init(app: Flask, https: bool) -> None:
    """Cookie flags, CSRF on every POST, and the headers on every response."""
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=https,
        # The login session expires on its own (see sessions); tokens are single-use.
        WTF_CSRF_TIME_LIMIT=None,
        # Strict mode wants a Referer, which our Referrer-Policy withholds.
        WTF_CSRF_SSL_STRICT=False,
    )
    csrf.init_app(app)
    app.after_request(add_headers)
