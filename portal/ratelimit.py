"""Flood defense that needs no IP address: global limits in memory, per-thread limits from rows.

The portal cannot tell one submitter from another, and must not try: over
Tor every request comes from 127.0.0.1. So the limits are global. Each
limited action ("submissions", "uploads") has a token bucket in each worker
process, in memory only and on the monotonic clock: no request time is ever
written anywhere, since a list of request times on disk would be a list of
arrival times. The settings are per process: with gunicorn's W workers the
portal-wide ceiling is W times the setting (deploy/README.md has the
arithmetic), and a restart refills every bucket.

An empty bucket is answered before the request's body is read: ``503`` with
``Retry-After`` and a message that says nothing was stored and nothing sent
before was affected. The no-JavaScript form comes back filled in, so that
the submitter loses nothing they typed. Nothing already accepted is touched.

Per thread, the limit is counted from the rows (submissions received in the
thread on the day), so it needs nothing new on disk: ``check_thread``.
Tor's onion-service proof-of-work (deploy/torrc) works before any of this,
at the network layer; the storage quota bounds what a flood can fill.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, make_response, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.config import Config
from portal.models import Submission
from portal.report import N_
from portal.source.upload import Refused

EXTENSION = "portal.ratelimit"
SECONDS_PER_HOUR = 3600.0
BURST_FRACTION = 10  # a bucket holds a tenth of an hour's allowance (at least one)
ACTIONS = ("submissions", "uploads")
# The source interface's endpoints limited as submissions (before their body is read): reports
# and follow-ups, which store an envelope each.
SUBMISSION_ENDPOINTS = frozenset(
    {"plain.submit", "sealed.submit", "followup.plain", "followup.sealed"}
)
# The no-JavaScript forms, which come back filled in when refused.
FORM_ENDPOINTS = frozenset({"plain.submit", "followup.plain"})

OVERLOADED = N_(
    "The portal is receiving more reports than it can take right now, so nothing was stored."
    " Nothing you sent before was affected. Please try again in a few minutes."
)
THREAD_BUSY = N_(
    "This report has received as many additions as the portal accepts in one day, so"
    " nothing was stored. Please try again tomorrow."
)

View = TypeVar("View", bound=Callable[..., Any])


class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``per_hour`` an hour; thread-safe."""

    def __init__(self, per_hour: int, now: float, least: int = 1) -> None:
        self.per_second = per_hour / SECONDS_PER_HOUR
        self.capacity = float(max(least, per_hour // BURST_FRACTION))
        self.tokens = self.capacity
        self.updated = now
        self._lock = threading.Lock()

    def take(self, now: float) -> float:
        """Take one token: 0 when taken, else the seconds until one is there."""
        with self._lock:
            elapsed = max(0.0, now - self.updated)
            self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.per_second


def buckets_for(config: Config, now: float) -> dict[str, Bucket | None]:
    """One bucket per action from ``config``; ``None`` where the setting is 0 (no limit)."""
    submissions, uploads = config.submissions_per_hour, config.uploads_per_hour
    return {
        "submissions": Bucket(submissions, now) if submissions else None,
        # One allegation may start as many uploads as it may have files, in one burst.
        "uploads": Bucket(uploads, now, least=max(1, config.max_files)) if uploads else None,
    }


def wait_for(action: str) -> float:
    """Take a token for ``action`` in this application: 0, or the seconds to wait."""
    bucket = cast(dict[str, Bucket | None], current_app.extensions[EXTENSION])[action]
    return 0.0 if bucket is None else bucket.take(time.monotonic())


def overloaded(wait: float) -> Response:
    """The 503 answer, with ``Retry-After``; a no-JavaScript form comes back filled in."""
    from portal.source import errors

    if request.endpoint in FORM_ENDPOINTS:
        response = make_response(refill(OVERLOADED, 503))
    else:
        response = make_response(errors.respond(503, OVERLOADED))
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def refill(notice: str, status: int) -> tuple[str, int]:
    """The no-JavaScript form of this request, filled in with what was sent, and ``notice``."""
    from portal.source import followup, formstream, plain, views

    if request.endpoint == "followup.plain":
        sent = {k: v for k, v in formstream.submitted().items() if k in followup.KNOWN_NAMES}
        return followup.page(sent, notice=notice, status=status)
    values = {k: v for k, v in formstream.submitted().items() if k in plain.KNOWN_NAMES}
    return views.render_form(values, notice=notice, status=status)


def limited(action: str) -> Callable[[View], View]:
    """Decorate a view so that it answers 503 when ``action``'s bucket is empty.

    ``@ratelimit.limited("uploads")`` under a blueprint's route decorator;
    the application must have called :func:`init`.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown rate-limited action {action!r}")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            wait = wait_for(action)
            return overloaded(wait) if wait else view(*args, **kwargs)

        return cast(View, guarded)

    return decorate


def limit_submissions() -> Response | None:
    """``before_request``: take a submissions token for the submission endpoints."""
    if request.endpoint not in SUBMISSION_ENDPOINTS:
        return None
    wait = wait_for("submissions")
    return overloaded(wait) if wait else None


def init(app: Flask, config: Config) -> None:
    """Give ``app`` its buckets and limit its submission endpoints."""
    app.extensions[EXTENSION] = buckets_for(config, time.monotonic())
    app.before_request(limit_submissions)


def thread_submissions(session: Session, thread_id: str, day: dt.date) -> int:
    """How many submissions ``thread_id`` received on ``day``, counted from the rows."""
    query = select(func.count()).where(
        Submission.thread_id == thread_id, Submission.received_on == day
    )
    return int(session.scalar(query) or 0)


def check_thread(session: Session, thread_id: str, day: dt.date, limit: int) -> None:
    """Refuse (429) one more submission to a thread that has ``limit`` today (0: no limit)."""
    if limit and thread_submissions(session, thread_id, day) >= limit:
        raise Refused(429, THREAD_BUSY)
