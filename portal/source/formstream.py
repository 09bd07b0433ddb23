"""A no-JavaScript form with files, read as it streams in, for ``/report/plain`` and
``/followup/plain``.

The limits, the quota and the free space are checked from
``Content-Length`` before a byte of the body is read; the body is then read
by ``multipart.StreamingForm``, whose ``gate`` (the page's own check of the
answers, the CSRF token and the consent) runs before any file byte is kept.
Every failure becomes an answer a person can act on, with nothing kept: the
body is drained first, so that the browser sees the answer, not a reset.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from flask import request
from flask_wtf.csrf import CSRFError, ValidationError, validate_csrf
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from portal import attachment
from portal.report import N_
from portal.source import multipart, state
from portal.source.limits import DISK_FULL, NOT_STORED, check_space, plain_limits
from portal.source.security import CSRF_FIELD
from portal.source.upload import Refused
from portal.storage import Staged

log = logging.getLogger(__name__)

FILES_TOO_LARGE = N_(
    "The files are larger than this portal accepts at once, or there are too many, so"
    " nothing was stored. Go back, remove some files and send the form again."
)
NO_LENGTH = N_(
    "The form arrived without its length, so nothing was stored. Go back and send it again."
)
MALFORMED = N_(
    "The form arrived damaged or incomplete, so nothing was stored. Go back and send it again."
)

Gate = Callable[[dict[str, list[str]]], Any]
Page = tuple[str, int]


class FormAgain(Exception):
    """The answers need the submitter again: the form, filled in, is the answer."""

    def __init__(self, page: tuple[str, int]) -> None:
        super().__init__("the form is shown again")
        self.page = page


class _Answers(Exception):
    """Stops the reading once the answers are in (see :func:`answers_only`)."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        super().__init__("the answers are in")
        self.values = values


def respond(
    review: Callable[[Mapping[str, Sequence[str]], bool], Any],
    finish: Callable[[Any, Sequence[tuple[Staged, attachment.Metadata]]], Page],
    unknown_part: Callable[[], Page],
) -> Page:
    """The answer to a no-JavaScript form, multipart (files) or URL-encoded (none).

    ``review(values, files_sent)`` checks the answers (raising ``FormAgain``
    or ``CSRFError``) before any file is kept; ``finish(checked, files)``
    seals and stores. Staged files that were not stored are removed.
    """
    try:
        if request.mimetype != multipart.MULTIPART:
            return finish(review(submitted(), False), [])
        received = read(lambda values: review(values, True), unknown_part)
        try:
            return finish(received.checked, received.files)
        finally:
            received.discard()  # stored ones were moved already; this removes the rest
    except FormAgain as again:
        return again.page


def submitted() -> dict[str, list[str]]:
    """The answers of the request's form, with line breaks as form.js's: a URL-encoded form
    parsed in memory, or the text parts of a multipart one, its files skipped unread."""
    if request.mimetype == multipart.MULTIPART:
        return normalised(answers_only())
    return normalised({name: request.form.getlist(name) for name in request.form})


def normalised(values: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {name: [v.replace("\r\n", "\n") for v in found] for name, found in values.items()}


def check_csrf(values: Mapping[str, Sequence[str]]) -> None:
    """Flask-WTF's check of the form's token, raising the same ``CSRFError``."""
    tokens = values.get(CSRF_FIELD, [])
    try:
        validate_csrf(tokens[0] if len(tokens) == 1 else None)
    except ValidationError as err:
        raise CSRFError(str(err)) from None


def read(gate: Gate, unknown_part: Callable[[], tuple[str, int]]) -> multipart.Received:
    """The request's multipart form, its files sealed and staged once ``gate`` let them in.

    Raises :class:`Refused` (400, 411, 413, 503, 507), :class:`FormAgain`
    (``unknown_part()`` for a file under another name, or whatever ``gate``
    raised) or ``CSRFError``; nothing is then kept. The caller stores the
    staged files or calls ``discard()``.
    """
    current = state.current()
    limits = plain_limits(current.config)
    length = request.content_length
    if length is None:
        raise Refused(411, NO_LENGTH)
    if length > limits.body:
        raise Refused(413, FILES_TOO_LARGE)
    check_space(current, length)
    boundary = request.mimetype_params.get("boundary", "")
    if not boundary or not boundary.isascii():
        raise Refused(400, MALFORMED)
    request.max_content_length = limits.body
    recipients = [k.public_key for k in current.keys]
    form = multipart.StreamingForm(request.stream.read, boundary.encode(), limits.form,
                                   (current.config.data_dir, recipients))  # fmt: skip
    try:
        return form.run(gate)
    except BaseException as err:
        drain()
        raise _answer(err, unknown_part) from None


def answers_only() -> dict[str, list[str]]:
    """The text answers of the request's multipart form, every file skipped unread.

    For an answer that shows the form again without storing anything (an
    overloaded portal); a malformed or oversized form gives what was read.
    """
    boundary = request.mimetype_params.get("boundary", "")
    config = state.current().config
    limits = plain_limits(config)
    if not boundary or not boundary.isascii() or (request.content_length or 0) > limits.body:
        return {}  # not worth reading: the form comes back empty, with the notice
    # No file is ever sealed: the gate stops the reading where the first file begins.
    form = multipart.StreamingForm(request.stream.read, boundary.encode(), limits.form,
                                   (config.data_dir, []))  # fmt: skip

    def stop(values: dict[str, list[str]]) -> None:
        raise _Answers(values)

    try:
        form.run(stop)
    except _Answers as answers:
        return answers.values
    except (ValueError, HTTPException, multipart.TooLarge):
        return form.received.values
    finally:
        drain()
    return form.received.values  # never reached: the gate runs at the end at the latest


def _answer(err: BaseException, unknown_part: Callable[[], tuple[str, int]]) -> BaseException:
    """What to answer when reading or sealing the form failed (nothing was kept)."""
    if isinstance(err, multipart.TooLarge | RequestEntityTooLarge):
        return Refused(413, FILES_TOO_LARGE)
    if isinstance(err, multipart.UnknownPart):
        return FormAgain(unknown_part())
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return Refused(507, DISK_FULL)
    if isinstance(err, OSError | InvalidTag):
        log.error("files sent without JavaScript could not be sealed: %s", type(err).__name__)
        return Refused(503, NOT_STORED)
    if isinstance(err, ValueError | HTTPException) and not isinstance(err, CSRFError):
        return Refused(400, MALFORMED)
    return err


def drain() -> None:
    """Read what is left of the body, so that the browser sees the answer, not a reset."""
    try:
        while request.stream.read(multipart.PIECE):
            pass
    except HTTPException:
        pass
