"""The staff interface: its own onion (with Tor client authorisation), app and port.

``create_app(config)`` refuses to start without a strong ``PORTAL_SECRET_KEY``
(``ConfigError``): the session cookie and the sealed TOTP secrets depend on
it. The staff interface shares the models and the storage with the source
interface, never its templates or its sessions: its cookie has another name
and is signed with another key derived from the secret. Accounts are made
on the command line (``portal staff add``); see ``portal.staffauth``.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask.logging import default_handler

from portal.config import PROJECT_ROOT, Config, from_env
from portal.source import logs
from portal.staff import auth, dashboard, errors, security, sessions, state

STATIC = PROJECT_ROOT / "portal" / "static"
TEMPLATES = PROJECT_ROOT / "templates"
MAX_FORM_BYTES = 64 * 1024  # a login form is far smaller


def _configure_logging(app: Flask) -> None:
    app.logger.removeHandler(default_handler)  # its format carries the time
    if not logging.getLogger().handlers:
        logs.configure()


def create_app(config: Config) -> Flask:
    """The staff interface for ``config``; raises ``ConfigError`` without a secret key."""
    app = logs.SourceFlask(__name__, static_folder=STATIC, template_folder=TEMPLATES)
    _configure_logging(app)
    current = state.build(config)
    app.secret_key = current.session_key
    app.extensions[state.EXTENSION] = current
    app.config["MAX_CONTENT_LENGTH"] = MAX_FORM_BYTES
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.before_request(dashboard.upload_limit)  # before CSRF reads the form
    security.init(app, config.https)
    sessions.init(app)
    errors.init(app)
    for blueprint in (auth.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    return app


def app_from_env() -> Flask:
    """The staff interface configured from the environment, for gunicorn:
    ``gunicorn 'portal.staff:app_from_env()'`` (its access log is off unless asked for).
    """
    return create_app(from_env())
