"""Response headers, cookies and CSRF for the source interface.

Every response gets the strict CSP (no inline script or style, no
``'wasm-unsafe-eval'``: the browser bundles need neither WebAssembly nor
eval), no referrer, no sniffing, no framing and no powerful features; every
page gets ``Cache-Control: no-store`` so that a form, an error or a receipt
is never kept in a cache on a shared device. The session cookie holds only
the CSRF token; it is HttpOnly, SameSite=Strict, and Secure under HTTPS.
"""

from __future__ import annotations

from flask import Flask, Response, g, request, session
from flask_wtf.csrf import CSRFProtect

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
PERMISSIONS = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer", "autoplay", "camera", "clipboard-read", "display-capture",
        "encrypted-media", "fullscreen", "geolocation", "gyroscope", "hid", "magnetometer",
        "microphone", "midi", "payment", "picture-in-picture", "publickey-credentials-get",
        "screen-wake-lock", "serial", "usb", "web-share", "xr-spatial-tracking",
    )
)  # fmt: skip
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS,
}
CSRF_FIELD = "csrf_token"

csrf = CSRFProtect()


def add_headers(response: Response) -> Response:
    """The security headers, and no caching for anything but static files."""
    response.headers.update(HEADERS)
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def rotate_csrf() -> None:
    """Forget the session's CSRF token, so a form can be accepted once only."""
    session.pop(CSRF_FIELD, None)
    g.pop(CSRF_FIELD, None)


def init(app: Flask, https: bool) -> None:
    """Cookie flags, CSRF on every POST, and the headers on every response."""
    app.config.update(
        SESSION_COOKIE_NAME="portal_source",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=https,
        # The token is tied to the session cookie and rotated after each accepted
        # report; a time limit would only lose the long accounts people type slowly.
        WTF_CSRF_TIME_LIMIT=None,
        # Flask-WTF's strict mode wants a Referer under HTTPS, which our
        # Referrer-Policy (no-referrer) rightly withholds; SameSite=Strict covers it.
        WTF_CSRF_SSL_STRICT=False,
    )
    csrf.init_app(app)
    app.after_request(add_headers)
