"""The rows the server keeps: only what the brief allows, nothing about who sent what.

A *thread* is what a receipt finds: the keyed digest of its lookup token and
the submitter's reply public key. A *submission* is one stored envelope: a
random id (also its file name), the day it arrived (a date, never a time),
the path that sealed it, the padded and total sizes, and the recipient key
ids from its header. No IP address, user agent, time of day, file name or
plaintext field has a column here, and none may get one. Staff accounts
(``StaffUser``) hold what logging in needs, and nothing about submissions.
An *upload* in progress (``Upload``) holds what resuming it needs, and is
deleted once attached to a report or expired.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ID_LENGTH = 32  # 128 random bits in hex
DIGEST_SIZE = 32
REPLY_KEY_SIZE = 32
# Up to 16 key ids of 32 hex digits, separated by spaces.
KEY_IDS_LENGTH = 16 * 33 - 1
STAFF_NAME_LENGTH = 64
PASSWORD_HASH_LENGTH = 255
SEALED_TOTP_SIZE = 64  # nonce, 20-byte secret and tag: 48 bytes
SIGNATURE_SIZE = 64  # Ed25519

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite keeps an ordinary table in rowid order, which is the order of arrival; a
# WITHOUT ROWID table is kept in the order of its random primary key instead.
RANDOM_ORDER = {"sqlite_with_rowid": False}


class SealedBy(enum.Enum):
    """Who sealed the envelope, as the submission path says (the header's path byte)."""

    BROWSER = "browser"
    SERVER = "server"


class Thread(Base):
    __tablename__ = "threads"
    __table_args__ = RANDOM_ORDER

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    lookup_digest: Mapped[bytes] = mapped_column(LargeBinary(DIGEST_SIZE), unique=True)
    # Masked under a key from the server's secret (portal.replykey), never in clear:
    # the clear key follows from a receipt alone and would link it to the thread.
    reply_public_key: Mapped[bytes] = mapped_column(LargeBinary(REPLY_KEY_SIZE))
    created_on: Mapped[dt.date] = mapped_column(Date)

    submissions: Mapped[list[Submission]] = relationship(back_populates="thread")
    replies: Mapped[list[Reply]] = relationship(back_populates="thread")


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        CheckConstraint("padded_size > 0", name="padded_size_positive"),
        CheckConstraint("envelope_size > padded_size", name="envelope_size_above_padded"),
        RANDOM_ORDER,
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"), index=True)
    received_on: Mapped[dt.date] = mapped_column(Date)
    sealed_by: Mapped[SealedBy] = mapped_column(
        Enum(
            SealedBy,
            name="sealed_by",
            native_enum=False,
            create_constraint=True,
            length=7,
            values_callable=lambda kinds: [k.value for k in kinds],
        )
    )
    padded_size: Mapped[int] = mapped_column(BigInteger)
    envelope_size: Mapped[int] = mapped_column(BigInteger)
    recipient_key_ids: Mapped[str] = mapped_column(String(KEY_IDS_LENGTH))
    # The day of the latest export that held this submission (a day, never a time); NULL
    # until it is first exported. Lets the dashboard tell new items from those waiting
    # for the desk's acknowledgement.
    exported_on: Mapped[dt.date | None] = mapped_column(Date)

    thread: Mapped[Thread] = relationship(back_populates="submissions")

    @property
    def key_ids(self) -> tuple[bytes, ...]:
        """The recipient key ids, in header order."""
        return tuple(bytes.fromhex(k) for k in self.recipient_key_ids.split())


class Reply(Base):
    """A reply sealed on the desk for a thread, carried here by a return bundle.

    A random id (also its file name, ``replies/<id>.env``), its thread, the day
    it arrived, the envelope's size, the day the submitter first read it
    (NULL until then), and the desk's Ed25519 signature over the thread and
    the envelope's digest (docs/BUNDLES.md §8.2), which the submitter's reader
    checks; NULL only for replies stored before migration 0005, which readers
    refuse. Nothing about its text: the server cannot open it.
    """

    __tablename__ = "replies"
    __table_args__ = (CheckConstraint("size > 0", name="size_positive"), RANDOM_ORDER)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"), index=True)
    received_on: Mapped[dt.date] = mapped_column(Date)
    size: Mapped[int] = mapped_column(BigInteger)
    read_on: Mapped[dt.date | None] = mapped_column(Date)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary(SIGNATURE_SIZE))

    thread: Mapped[Thread] = relationship(back_populates="replies")


class Upload(Base):
    """A resumable upload of one browser-sealed attachment (``docs/UPLOADS.md``).

    A random id (its file name, ``uploads/<id>.part``), the SHA-256 digest of
    its token (so that a reader of the database cannot resume or attach it),
    the envelope's declared length, the offset committed so far (every byte
    below it is fsynced), whether it is complete and checked, and the Unix
    time after which it is deleted, rounded up to the hour so that it does
    not tell when the upload began. Nothing else: no thread, no time of day.
    """

    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint("length > 0", name="length_positive"),
        CheckConstraint(
            "committed_offset >= 0 AND committed_offset <= length", name="offset_within_length"
        ),
        RANDOM_ORDER,
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(DIGEST_SIZE), unique=True)
    length: Mapped[int] = mapped_column(BigInteger)
    committed_offset: Mapped[int] = mapped_column(BigInteger)
    complete: Mapped[bool] = mapped_column(Boolean(name="complete", create_constraint=True))
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class DeletedReply(Base):
    """The id of a reply the server has deleted (read, or past the retention), and nothing else.

    Kept so that a return bundle carrying that reply again (a replay of an
    old bundle) is refused instead of storing the reply a second time
    (``portal.purge``; SECURITY.md weakness 30). The id is random, chosen by
    the desk; no thread, no day: the row tells only that some reply existed.
    """

    __tablename__ = "deleted_replies"
    __table_args__ = RANDOM_ORDER

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)


def encode_key_ids(key_ids: tuple[bytes, ...]) -> str:
    """The column value for ``key_ids`` (lower-case hex, space-separated)."""
    return " ".join(k.hex() for k in key_ids)


class StaffState(enum.Enum):
    """Whether a staff account has been enrolled (password chosen, TOTP proven) yet."""

    PENDING = "pending"
    ACTIVE = "active"


class StaffUser(Base):
    """A staff account, made on the server's command line and enrolled in the staff interface.

    The password is an Argon2id hash; the TOTP secret is sealed with AES-GCM
    under a key derived from ``PORTAL_SECRET_KEY`` (see ``portal.staffauth``);
    the one-time enrolment secret is kept only as its SHA-256 digest, and
    only until enrolment. ``totp_last_step`` is the newest TOTP time step
    accepted, so that a code is never accepted twice. ``locked_until`` is the
    Unix time before which no login is tried (the growing delay after
    failures); ten failures in a row lock the account until its TOTP is reset.
    ``session_digest`` is the SHA-256 digest of the random token of the one
    live login session, so that logging out, a new login, a TOTP reset or
    removing the account ends the session on the server's side too.
    """

    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint("failed_attempts >= 0", name="failed_attempts_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(STAFF_NAME_LENGTH), unique=True)
    state: Mapped[StaffState] = mapped_column(
        Enum(
            StaffState,
            name="staff_state",
            native_enum=False,
            create_constraint=True,
            length=7,
            values_callable=lambda kinds: [k.value for k in kinds],
        )
    )
    password_hash: Mapped[str | None] = mapped_column(String(PASSWORD_HASH_LENGTH))
    totp_secret: Mapped[bytes] = mapped_column(LargeBinary(SEALED_TOTP_SIZE))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    enrolment_digest: Mapped[bytes | None] = mapped_column(LargeBinary(DIGEST_SIZE))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[int] = mapped_column(BigInteger, default=0)
    session_digest: Mapped[bytes | None] = mapped_column(LargeBinary(DIGEST_SIZE))
