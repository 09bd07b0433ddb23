"""The page after login: counts and figures only, no submitter data."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.staff import figures, state

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def home() -> str:
    current = state.current()
    shown = figures.gather(current.db, current.config.data_dir)
    return render_template("staff/dashboard.html", figures=shown)
