"""Staff accounts: Argon2id passwords, TOTP codes, enrolment, delays and lockout.

No web framework here: the command line (``portal staff ...``) and the staff
interface both go through these functions. The rules:

- A password is kept as an Argon2id hash (argon2-cffi's defaults). For a name
  that has no active account a dummy hash is verified all the same, so that
  the time taken does not say which names exist.
- The TOTP secret (RFC 6238: SHA-1, 6 digits, 30 seconds) is sealed with
  AES-256-GCM under a key derived with HKDF from ``PORTAL_SECRET_KEY`` and
  its own purpose string, bound to the account's name. A code from the
  previous, current or next time step is accepted, and only for a step
  newer than the last one accepted, so a code never works twice.
- The one-time enrolment secret is high-entropy and stored only as its
  SHA-256 digest, which is deleted when the account is enrolled.
- A login session carries a random token whose digest the account row
  keeps: one live session per account, ended on the server's side by
  logging out, by a new login, by a TOTP reset or by removing the account.
- Every failure adds one to the account's count and sets a "not before"
  time that grows with it; nothing sleeps. Ten failures in a row lock the
  account until ``portal staff reset-totp``.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.db import Database
from portal.models import STAFF_NAME_LENGTH, StaffState, StaffUser

ISSUER = "Reprisals portal"
TOTP_PURPOSE = b"reprisals-portal staff TOTP secret v1"
TOTP_SECRET_SIZE = 20  # 160 bits, as RFC 4226 recommends for SHA-1
TOTP_DIGITS = 6
TOTP_STEP = 30
TOTP_WINDOW = 1  # steps either side of now
NONCE_SIZE = 12
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
LOCKOUT_AFTER = 10
MAX_DELAY = 300
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

hasher = PasswordHasher()  # Argon2id
log = logging.getLogger(__name__)


def now() -> float:
    """The current Unix time; the tests replace this function to move the clock."""
    return time.time()


class AccountError(Exception):
    """A command on an account cannot be done; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class Result(enum.Enum):
    OK = "ok"
    FAILED = "failed"  # a wrong name, password, code or enrolment secret: never which
    WAIT = "wait"  # too soon after a failure
    LOCKED = "locked"


@dataclass(frozen=True)
class Outcome:
    result: Result
    user_id: int | None = None
    wait_seconds: int = 0


@dataclass(frozen=True)
class Provisioning:
    """What the command line prints for a new account or a new TOTP secret."""

    name: str
    uri: str
    secret_base32: str
    enrolment_secret: str | None


# TOTP ------------------------------------------------------------------------------


def totp_key(secret_key: bytes) -> bytes:
    """The AES-256-GCM key that seals TOTP secrets, derived from ``PORTAL_SECRET_KEY``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=TOTP_PURPOSE)
    return hkdf.derive(secret_key)


def seal_totp_secret(secret_key: bytes, name: str, secret: bytes) -> bytes:
    """``secret`` encrypted for storage: nonce, then ciphertext and tag; bound to ``name``."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(totp_key(secret_key)).encrypt(nonce, secret, name.encode())


def open_totp_secret(secret_key: bytes, name: str, sealed: bytes) -> bytes:
    """The TOTP secret of ``name``; raises ``AccountError`` if it was sealed under another key."""
    try:
        return AESGCM(totp_key(secret_key)).decrypt(
            sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], name.encode()
        )
    except InvalidTag:
        raise AccountError(
            f"the TOTP secret of {name} cannot be opened",
            "PORTAL_SECRET_KEY has changed since the account was made;"
            f" run `portal staff reset-totp {name}`.",
        ) from None


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, TOTP_DIGITS, hashes.SHA1(), TOTP_STEP)  # noqa: S303 (RFC 6238)


def code_at(secret: bytes, when: float) -> str:
    """The TOTP code for ``secret`` at Unix time ``when``."""
    return _totp(secret).generate(int(when)).decode()


def provisioning_uri(secret: bytes, name: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads."""
    return _totp(secret).get_provisioning_uri(name, ISSUER)


def base32(secret: bytes) -> str:
    """The secret as an authenticator app asks for it when typed in."""
    return base64.b32encode(secret).decode().rstrip("=")


def matching_step(secret: bytes, code: str, when: float, last_step: int | None) -> int | None:
    """The time step within the window whose code is ``code`` and newer than ``last_step``."""
    code = code.strip().replace(" ", "")
    current = int(when) // TOTP_STEP
    found = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        expected = code_at(secret, step * TOTP_STEP)
        fresh = last_step is None or step > last_step
        if hmac.compare_digest(expected.encode(), code.encode()) and fresh:
            found = step
    return found


# Passwords and enrolment secrets -------------------------------------------------------


@cache
def _dummy_hash() -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; a dummy hash is verified when there is none."""
    try:
        return hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def enrolment_digest(enrolment_secret: str) -> bytes:
    """What is stored of a one-time enrolment secret (it has 192 random bits)."""
    return hashlib.sha256(enrolment_secret.strip().encode()).digest()


def password_problem(password: str, repeated: str) -> str | None:
    """Why a new password is refused, or ``None``."""
    if password != repeated:
        return "The two passwords are not the same."
    if len(password) < MIN_PASSWORD:
        return f"The password must be at least {MIN_PASSWORD} characters long."
    if len(password) > MAX_PASSWORD:
        return f"The password must be at most {MAX_PASSWORD} characters long."
    return None


def delay_after(failures: int) -> int:
    """Seconds to wait after ``failures`` failures in a row: 0, 0, 2, 4, 8 ... at most 300."""
    return 0 if failures < 3 else min(2 ** (failures - 2), MAX_DELAY)


def is_locked(user: StaffUser) -> bool:
    return user.failed_attempts >= LOCKOUT_AFTER


# Commands ---------------------------------------------------------------------------


def check_name(name: str) -> str:
    """``name`` if it can name an account; ``AccountError`` otherwise."""
    if not (NAME.fullmatch(name) and len(name) <= STAFF_NAME_LENGTH):
        raise AccountError(
            f"{name!r} cannot be an account name",
            f"Use up to {STAFF_NAME_LENGTH} letters, digits, dots, hyphens and underscores,"
            " starting with a letter or a digit.",
        )
    return name


def _new_totp_secret(secret_key: bytes, name: str) -> tuple[bytes, bytes]:
    """A new TOTP secret and its sealed form."""
    secret = secrets.token_bytes(TOTP_SECRET_SIZE)
    return secret, seal_totp_secret(secret_key, name, secret)


def new_enrolment_secret() -> str:
    """A one-time enrolment secret: 192 random bits, 32 characters of base64url."""
    return secrets.token_urlsafe(24)


def add(db: Database, secret_key: bytes, name: str) -> Provisioning:
    """A new pending account; raises ``AccountError`` when the name is taken."""
    check_name(name)
    secret, sealed = _new_totp_secret(secret_key, name)
    enrolment = new_enrolment_secret()
    user = StaffUser(
        name=name,
        state=StaffState.PENDING,
        totp_secret=sealed,
        enrolment_digest=enrolment_digest(enrolment),
        failed_attempts=0,
        locked_until=0,
    )
    try:
        with db.session() as session:
            session.add(user)
            session.commit()
    except IntegrityError:
        raise AccountError(
            f"there is already an account named {name}",
            f"Choose another name, or `portal staff reset-totp {name}` for a new TOTP secret.",
        ) from None
    return Provisioning(name, provisioning_uri(secret, name), base32(secret), enrolment)


def _missing(name: str) -> AccountError:
    return AccountError(f"there is no account named {name}", "Check the name and try again.")


def remove(db: Database, name: str) -> None:
    """Delete the account ``name``; raises ``AccountError`` when there is none."""
    with db.session() as session:
        deleted = session.execute(delete(StaffUser).where(StaffUser.name == name))
        session.commit()
    if not getattr(deleted, "rowcount", 0):
        raise _missing(name)


def reset_totp(db: Database, secret_key: bytes, name: str) -> Provisioning:
    """A new TOTP secret for ``name``, which also unlocks it (and, if not yet
    enrolled, a new enrolment secret)."""
    with db.session() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.name == name))
        if user is None:
            raise _missing(name)
        secret, sealed = _new_totp_secret(secret_key, name)
        enrolment = new_enrolment_secret() if user.state is StaffState.PENDING else None
        user.totp_secret = sealed
        user.totp_last_step = None
        user.failed_attempts = 0
        user.locked_until = 0
        user.session_digest = None
        if enrolment is not None:
            user.enrolment_digest = enrolment_digest(enrolment)
        session.commit()
    return Provisioning(name, provisioning_uri(secret, name), base32(secret), enrolment)


# Logging in and enrolling -------------------------------------------------------------


def _find(session: Session, name: str) -> StaffUser | None:
    return session.scalar(select(StaffUser).where(StaffUser.name == name))


def _refusal(user: StaffUser, when: float) -> Outcome | None:
    """Locked, or too soon after a failure: refuse without checking anything."""
    if is_locked(user):
        return Outcome(Result.LOCKED)
    if when < user.locked_until:
        return Outcome(Result.WAIT, wait_seconds=int(user.locked_until - when) + 1)
    return None


def _claim(session: Session, user: StaffUser, when: float) -> Outcome | None:
    """Count this attempt as a failure, and set its delay, before anything is checked.

    One conditional update, so parallel guesses cannot outrun the delays or the lockout:
    each must win it first, and at most LOCKOUT_AFTER ever do. A success clears the count
    again (:func:`_use_step`). Returns a refusal when the attempt may not go ahead.
    """
    refusal = _refusal(user, when)
    if refusal is not None:
        return refusal
    hold = int(when) + delay_after(user.failed_attempts + 1)
    claimed = session.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id)
        .where(StaffUser.failed_attempts < LOCKOUT_AFTER)
        .where(StaffUser.locked_until <= when)
        .values(failed_attempts=StaffUser.failed_attempts + 1, locked_until=hold)
    )
    session.commit()
    session.refresh(user)
    if getattr(claimed, "rowcount", 0):
        return None
    return _refusal(user, when) or Outcome(Result.WAIT, wait_seconds=1)


def _fail(session: Session, user: StaffUser | None) -> Outcome:
    """The answer to a failed attempt (already counted by :func:`_claim`)."""
    if user is None:
        return Outcome(Result.FAILED)
    session.refresh(user)
    return Outcome(Result.LOCKED) if is_locked(user) else Outcome(Result.FAILED)


def _use_step(session: Session, user: StaffUser, step: int) -> bool:
    """Record ``step`` as used, atomically: false if another request used it first."""
    done = session.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id)
        .where(or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step))
        .values(totp_last_step=step, failed_attempts=0, locked_until=0)
    )
    return bool(getattr(done, "rowcount", 0))


def _code_step(secret_key: bytes, user: StaffUser | None, code: str, when: float) -> int | None:
    if user is None:
        return None
    try:
        secret = open_totp_secret(secret_key, user.name, user.totp_secret)
    except AccountError as err:
        # Not the person's fault, but nothing to tell them either: the operator's log says it.
        log.error("%s: %s", err, err.hint)
        return None
    return matching_step(secret, code, when, user.totp_last_step)


def login(db: Database, secret_key: bytes, name: str, password: str, code: str) -> Outcome:
    """Check a name, password and TOTP code; counts a failure against the name if it exists."""
    when = now()
    with db.session() as session:
        found = _find(session, name)
        user = found if found is not None and found.state is StaffState.ACTIVE else None
        refusal = _claim(session, user, when) if user is not None else None
        if refusal is not None:
            return refusal
        password_ok = verify_password(user.password_hash if user else None, password)
        step = _code_step(secret_key, user, code, when)
        if user is None or not password_ok or step is None:
            return _fail(session, user)
        if not _use_step(session, user, step):
            return _fail(session, user)
        if user.password_hash and hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
        session.commit()
        return Outcome(Result.OK, user.id)


def enrol(
    db: Database, secret_key: bytes, name: str, enrolment_secret: str, password: str, code: str
) -> Outcome:
    """Activate a pending account with its enrolment secret, a new password and a TOTP code.

    The caller has checked the password with :func:`password_problem`.
    """
    when = now()
    with db.session() as session:
        found = _find(session, name)
        user = found if found is not None and found.state is StaffState.PENDING else None
        refusal = _claim(session, user, when) if user is not None else None
        if refusal is not None:
            return refusal
        given = enrolment_digest(enrolment_secret)
        secret_ok = user is not None and hmac.compare_digest(user.enrolment_digest or b"", given)
        step = _code_step(secret_key, user, code, when)
        if user is None or not secret_ok or step is None:
            return _fail(session, user)
        if not _use_step(session, user, step):
            return _fail(session, user)
        user.password_hash = hasher.hash(password)
        user.state = StaffState.ACTIVE
        user.enrolment_digest = None
        session.commit()
        return Outcome(Result.OK, user.id)


# Sessions ----------------------------------------------------------------------------


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def start_session(db: Database, user_id: int) -> str:
    """A new session token for ``user_id``; any earlier session of the account ends."""
    token = secrets.token_urlsafe(32)
    with db.session() as session:
        session.execute(
            update(StaffUser)
            .where(StaffUser.id == user_id)
            .values(session_digest=_token_digest(token))
        )
        session.commit()
    return token


def end_session(db: Database, user_id: int, token: str) -> None:
    """End the session holding ``token`` (if it is still the account's live one)."""
    with db.session() as session:
        session.execute(
            update(StaffUser)
            .where(StaffUser.id == user_id)
            .where(StaffUser.session_digest == _token_digest(token))
            .values(session_digest=None)
        )
        session.commit()


def session_user(db: Database, user_id: int, token: str) -> StaffUser | None:
    """The account of a session, if the session is its live one and it is active, unlocked."""
    with db.session() as session:
        user = session.get(StaffUser, user_id)
        if user is None or user.state is not StaffState.ACTIVE or is_locked(user):
            return None
        live = user.session_digest or b""
        return user if hmac.compare_digest(live, _token_digest(token)) else None
