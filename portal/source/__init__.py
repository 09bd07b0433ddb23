"""The source interface: the public onion service where allegations are submitted.

``create_app(config)`` refuses to start without a strong ``PORTAL_SECRET_KEY``
(``ConfigError``): CSRF tokens and lookup digests depend on it. Without a
usable key manifest it starts but refuses every submission with a 503 page
that says why, so that a submitter is told rather than met with silence.
"""

from __future__ import annotations

import logging

from flask import Flask, request
from flask.logging import default_handler
from flask.typing import ResponseReturnValue

from portal import ratelimit
from portal.config import PROJECT_ROOT, Config, from_env
from portal.source import (
    assets,
    errors,
    followup,
    followup_plain,  # noqa: F401  (adds /followup/plain to followup.bp)
    i18n,
    limits,
    logs,
    plain,
    replies,
    sealed,
    security,
    state,
    uploads,
    views,
)

STATIC = PROJECT_ROOT / "portal" / "static"
TEMPLATES = PROJECT_ROOT / "templates"
SUBMISSION_ENDPOINTS = frozenset(
    {"pages.form", "plain.submit", "sealed.submit", "followup.ask", "followup.plain"}
    | {"followup.sealed", "uploads.create", "uploads.append"}
)


def refuse_when_unavailable() -> ResponseReturnValue | None:
    """Answer 503, saying why, to the form and to every submission when there is no key."""
    reason = state.current().unavailable
    if reason is None or request.endpoint not in SUBMISSION_ENDPOINTS:
        return None
    if request.blueprint == "uploads":
        return uploads.answer(503, reason)
    if request.endpoint in errors.JSON_ENDPOINTS:
        return errors.respond(503, reason)
    return views.render_unavailable(i18n.translate(reason))


def _configure_logging(app: Flask) -> None:
    app.logger.removeHandler(default_handler)  # its format carries the time
    if not logging.getLogger().handlers:
        logs.configure()


def create_app(config: Config) -> Flask:
    """The source interface for ``config``; raises ``ConfigError`` without a secret key."""
    app = logs.SourceFlask(__name__, static_folder=STATIC, template_folder=TEMPLATES)
    _configure_logging(app)
    current = state.build(config, assets.load(STATIC))
    app.secret_key = config.require_secret()
    app.extensions[state.EXTENSION] = current
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.before_request(refuse_when_unavailable)
    limits.init(app, config.max_report_bytes)
    ratelimit.init(app, config)
    security.init(app, config.https)
    i18n.init(app, config.translations_dir)
    errors.init(app)
    app.context_processor(lambda: {"demo": current.demo, "unavailable": current.unavailable})
    app.context_processor(lambda: {"upload_limits": uploads.form_limits(config)})
    for blueprint in (views.bp, sealed.bp, plain.bp, replies.bp, followup.bp, uploads.bp):
        app.register_blueprint(blueprint)
    return app


def app_from_env() -> Flask:
    """The source interface configured from the environment, for gunicorn:
    ``gunicorn 'portal.source:app_from_env()'`` (its access log is off unless asked for).
    """
    return create_app(from_env())
