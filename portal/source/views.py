"""The pages: landing, the allegation form, and the page that says submissions are refused."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from flask import Blueprint, render_template

from portal.source import formview, state

bp = Blueprint("pages", __name__)


@bp.get("/")
def landing() -> str:
    return render_template("source/landing.html")


@bp.get("/report")
def form() -> tuple[str, int]:
    return render_form()


def recipient_keys(current: state.SourceState) -> list[dict[str, str]]:
    """The ``#recipient-keys`` data block: every active key, with its fingerprint."""
    return [
        {
            "label": k.label,
            "public_key": base64.b64encode(k.public_key).decode(),
            "fingerprint": k.fingerprint,
        }
        for k in current.keys
    ]


def render_form(
    values: Mapping[str, Sequence[str]] | None = None,
    problems: Mapping[str, str] | None = None,
    *,
    notice: str | None = None,
    consent_missing: bool = False,
    status: int = 200,
) -> tuple[str, int]:
    """The form, filled in with ``values`` and showing ``problems`` when shown again."""
    current = state.current()
    page = render_template(
        "source/form.html",
        sections=formview.sections(values, problems),
        recipient_keys=recipient_keys(current),
        fingerprints=current.fingerprints,
        assets=current.assets,
        problems=problems or {},
        notice=notice,
        consent_missing=consent_missing,
    )
    return page, status


def render_unavailable(reason: str) -> tuple[str, int]:
    """The 503 page saying why nothing can be submitted."""
    return render_template("source/unavailable.html", reason=reason), 503
