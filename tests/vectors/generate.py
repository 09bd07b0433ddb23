"""Generate the envelope v1 known-answer vectors in ``tests/vectors/v1/``.

Run ``.venv/bin/python tests/vectors/generate.py`` to (re)write the files and
``.venv/bin/python tests/vectors/generate.py --check`` to verify that the
committed files are exactly what this script produces (``tests/test_vectors.py``
runs the check). Everything is deterministic: the recipients' secret keys, the
content keys, the ephemeral secrets and the large plaintexts are all hashes of
fixed labels, and every value that an implementation consumes is written out
in hex, so another implementation (``envelope.js``) can reproduce each envelope
byte for byte without running this script. ``tests/vectors/README.md`` describes
the layout.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl.public import PrivateKey

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "v1"

try:
    from portal import attachment, envelope, report
except ModuleNotFoundError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
    from portal import attachment, envelope, report

LABEL_PREFIX = b"reprisals-portal test vectors v1 "
INLINE_PLAINTEXT_MAX = 64  # plaintexts up to this many bytes are inlined as hex

# Short UTF-8 report in Spanish, Russian and Arabic (non-ASCII on purpose).
TEXT_REPORT = (
    "Me detuvieron después de hablar con la ONU en Ginebra.\n"
    "Меня задержали после встречи с ООН в Женеве.\n"
    "اعتقلوني بعد لقائي بالأمم المتحدة في جنيف.\n"
)


def label_hash(kind: str, label: str) -> bytes:
    """SHA-256 of ``LABEL_PREFIX + kind + ": " + label``: every fixed secret comes from here."""
    return hashlib.sha256(LABEL_PREFIX + f"{kind}: {label}".encode()).digest()


def pattern(label: str, size: int) -> bytes:
    """Deterministic incompressible plaintext: SHAKE-256 of a label, ``size`` bytes long."""
    return hashlib.shake_256(LABEL_PREFIX + f"plaintext: {label}".encode()).digest(size)


RECIPIENT_LABELS = ("alice", "bob", "carol")
OUTSIDER_LABEL = "outsider"


def secret_key(label: str) -> bytes:
    return label_hash("secret key", label)


def public_key(secret: bytes) -> bytes:
    return bytes(PrivateKey(secret).public_key)


def derive(content_key: bytes, info: bytes) -> bytes:
    """HKDF-SHA256, no salt, 32 bytes: the key derivation of docs/FORMAT.md, written out again."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(content_key)


class FixedRandom:
    """An ``rng`` for ``seal_stream`` that hands out fixed bytes and insists they are all used."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.used = 0

    def __call__(self, n: int) -> bytes:
        if self.used + n > len(self.data):
            raise AssertionError("the sealer asked for more randomness than the vector fixes")
        out = self.data[self.used : self.used + n]
        self.used += n
        return out

    def assert_used_up(self) -> None:
        if self.used != len(self.data):
            raise AssertionError("the sealer used less randomness than the vector fixes")


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    recipients: tuple[str, ...]
    path: envelope.SealPath
    plaintext: bytes
    text: bool = False

    @property
    def content_key(self) -> bytes:
        return label_hash("content key", self.name)

    def ephemeral_secret(self, index: int) -> bytes:
        return label_hash("ephemeral secret", f"{self.name}/{index}")

    @property
    def randomness(self) -> bytes:
        parts = [self.content_key]
        parts += [self.ephemeral_secret(i) for i in range(len(self.recipients))]
        return b"".join(parts)

    @property
    def plaintext_file(self) -> str:
        return f"{self.name}.{'txt' if self.text else 'bin'}"

    def seal(self) -> bytes:
        rng = FixedRandom(self.randomness)
        out = io.BytesIO()
        keys = [public_key(secret_key(label)) for label in self.recipients]
        envelope.seal_stream(
            io.BytesIO(self.plaintext), out, keys, len(self.plaintext), self.path, rng=rng
        )
        rng.assert_used_up()
        return out.getvalue()


ONE_CHUNK_CONTENT = envelope.CHUNK_SIZE - envelope.LENGTH_PREFIX_SIZE
MANY_CHUNKS_CONTENT = 200 * 1024 + 3

CASES = (
    Case(
        "empty",
        "One recipient, empty plaintext: the padded plaintext is the 8-byte length prefix "
        "and 65528 zero bytes (one 64 KiB chunk, the floor).",
        ("alice",),
        envelope.SealPath.DESK,
        b"",
    ),
    Case(
        "one_byte_server_path",
        "One recipient, a single 0x00 byte (a content byte that looks like padding), "
        "sealed by the server on the submitter's behalf (path 2, server).",
        ("alice",),
        envelope.SealPath.SERVER,
        b"\x00",
    ),
    Case(
        "three_recipients_text_browser_path",
        "Three recipients, a short UTF-8 report in Spanish, Russian and Arabic, "
        "sealed in the browser (path 1, browser).",
        ("alice", "bob", "carol"),
        envelope.SealPath.BROWSER,
        TEXT_REPORT.encode(),
        text=True,
    ),
    Case(
        "one_full_chunk",
        f"One recipient, {ONE_CHUNK_CONTENT} bytes (65536 - 8): the padded plaintext is exactly "
        "one full 64 KiB chunk and holds no padding at all.",
        ("bob",),
        envelope.SealPath.DESK,
        pattern("one_full_chunk", ONE_CHUNK_CONTENT),
    ),
    Case(
        "two_full_chunks",
        f"One recipient, {2 * envelope.CHUNK_SIZE - 8} bytes (131072 - 8): the padded plaintext "
        "is exactly two full chunks (131072 is a power of two, so Padme leaves it alone).",
        ("carol",),
        envelope.SealPath.DESK,
        pattern("two_full_chunks", 2 * envelope.CHUNK_SIZE - 8),
    ),
    Case(
        "many_chunks",
        f"Two recipients, {MANY_CHUNKS_CONTENT} bytes (200 KiB + 3): Padme pads to 208896 "
        "bytes, three full chunks and a short last chunk of 12288 bytes.",
        ("alice", "bob"),
        envelope.SealPath.DESK,
        pattern("many_chunks", MANY_CHUNKS_CONTENT),
    ),
)


def case_record(case: Case, env: bytes) -> dict[str, Any]:
    header = envelope.parse_header(env)
    raw = env[: header.header_size]
    recipients = []
    for i, label in enumerate(case.recipients):
        sk = secret_key(label)
        pk = public_key(sk)
        at = envelope.FIXED_HEADER_SIZE + i * envelope.STANZA_SIZE
        stanza = raw[at : at + envelope.STANZA_SIZE]
        recipients.append(
            {
                "label": label,
                "secret_key_hex": sk.hex(),
                "public_key_hex": pk.hex(),
                "key_id_hex": envelope.key_id(pk).hex(),
                "fingerprint": envelope.fingerprint(pk),
                "ephemeral_secret_hex": case.ephemeral_secret(i).hex(),
                "ephemeral_public_hex": stanza[16:48].hex(),
                "stanza_hex": stanza.hex(),
            }
        )
    record: dict[str, Any] = {
        "name": case.name,
        "description": case.description,
        "path": header.path.name.lower(),
        "path_code": int(header.path),
        "recipients": recipients,
        "randomness_hex": case.randomness.hex(),
        "content_key_hex": case.content_key.hex(),
        "header_mac_key_hex": derive(case.content_key, envelope.HEADER_KEY_INFO).hex(),
        "payload_key_hex": derive(case.content_key, envelope.PAYLOAD_KEY_INFO).hex(),
        "plaintext_size": len(case.plaintext),
        "plaintext_sha256": hashlib.sha256(case.plaintext).hexdigest(),
    }
    if len(case.plaintext) <= INLINE_PLAINTEXT_MAX:
        record["plaintext_hex"] = case.plaintext.hex()
    else:
        record["plaintext_file"] = case.plaintext_file
    record |= {
        "envelope_file": f"{case.name}.env",
        "envelope_size": len(env),
        "envelope_sha256": hashlib.sha256(env).hexdigest(),
        "padded_size": header.padded_size,
        "chunk_count": header.chunk_count,
        "header_size": header.header_size,
        "header_hex": raw.hex(),
    }
    return record


# --- negative vectors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Invalid:
    name: str
    base: str
    mutation: str
    mutate: Callable[[dict[str, bytes]], bytes]
    expected_error: str
    expected_by: str  # "inspect" or "open"
    open_error: str  # what opening it with ``open_with`` raises
    open_with: str = "alice"
    reuse_base_file: bool = False


def _set(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _xor(data: bytes, at: int, mask: int = 0x01) -> bytes:
    return _set(data, at, bytes([data[at] ^ mask]))


def _chunks(env: bytes) -> tuple[bytes, list[bytes]]:
    header = envelope.parse_header(env)
    body = env[header.header_size :]
    step = envelope.CHUNK_SIZE + envelope.TAG_SIZE
    return env[: header.header_size], [body[i : i + step] for i in range(0, len(body), step)]


def _hsize(env: bytes) -> int:
    return envelope.parse_header(env).header_size


def _stanza(env: bytes, index: int) -> bytes:
    at = envelope.FIXED_HEADER_SIZE + index * envelope.STANZA_SIZE
    return env[at : at + envelope.STANZA_SIZE]


def _remove_stanza(env: bytes, index: int) -> bytes:
    at = envelope.FIXED_HEADER_SIZE + index * envelope.STANZA_SIZE
    shorter = env[:at] + env[at + envelope.STANZA_SIZE :]
    return _set(shorter, 6, bytes([env[6] - 1]))


def _swapped_chunks(env: bytes) -> bytes:
    head, chunks = _chunks(env)
    return head + chunks[1] + chunks[0] + b"".join(chunks[2:])


def _duplicated_chunk(env: bytes) -> bytes:
    head, chunks = _chunks(env)
    return head + chunks[0] + chunks[0] + b"".join(chunks[2:])


def _padded_size_wrong(env: bytes) -> bytes:
    # Declare the next Padme size up (67584) and lengthen the payload to match, so that the
    # framing is consistent and only the header MAC can tell.
    bigger = envelope.padded_size(envelope.PAD_FLOOR - 8 + 1)
    out = _set(env, 8, struct.pack(">Q", bigger))
    extra = bigger - envelope.PAD_FLOOR + envelope.TAG_SIZE
    return out + pattern("padded_size_wrong filler", extra)


E, T3, C2, M = "empty", "three_recipients_text_browser_path", "two_full_chunks", "many_chunks"
ONE_CHUNK = envelope.CHUNK_SIZE + envelope.TAG_SIZE

INVALID = (
    Invalid(
        "empty_file",
        E,
        "no bytes at all",
        lambda v: b"",
        "NotAnEnvelope",
        "inspect",
        "NotAnEnvelope",
    ),
    Invalid(
        "wrong_magic",
        E,
        'bytes 1..4 (the magic "UNRP") replaced by "UNRQ"',
        lambda v: _set(v[E], 1, b"UNRQ"),
        "NotAnEnvelope",
        "inspect",
        "NotAnEnvelope",
    ),
    Invalid(
        "version_2",
        E,
        "byte 0 (the version) set to 2",
        lambda v: _set(v[E], 0, b"\x02"),
        "UnsupportedVersion",
        "inspect",
        "UnsupportedVersion",
    ),
    Invalid(
        "truncated_fixed_header",
        E,
        "only the first 10 bytes (inside the 16-byte fixed header)",
        lambda v: v[E][:10],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
    ),
    Invalid(
        "truncated_in_stanza",
        E,
        "only the first 100 bytes (inside the recipient stanza)",
        lambda v: v[E][:100],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
    ),
    Invalid(
        "truncated_in_header_mac",
        E,
        "cut one byte before the end of the header (inside the header MAC)",
        lambda v: v[E][: _hsize(v[E]) - 1],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
    ),
    Invalid(
        "truncated_after_header",
        M,
        "cut right after the header: no chunk at all",
        lambda v: v[M][: _hsize(v[M])],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
    ),
    Invalid(
        "truncated_inside_chunk_1",
        M,
        "cut 1000 bytes into chunk 1",
        lambda v: v[M][: _hsize(v[M]) + 1000],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
    ),
    Invalid(
        "truncated_after_chunk_1",
        M,
        "cut at the chunk boundary after chunk 1 of 4",
        lambda v: v[M][: _hsize(v[M]) + ONE_CHUNK],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
    ),
    Invalid(
        "truncated_last_byte",
        E,
        "the last byte (of the last chunk's tag) removed",
        lambda v: v[E][:-1],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
    ),
    Invalid(
        "last_chunk_dropped",
        C2,
        "chunk 2 of 2 removed, so chunk 1 (flagged not-last) ends the file",
        lambda v: v[C2][: _hsize(v[C2]) + ONE_CHUNK],
        "TruncatedEnvelope",
        "inspect",
        "TruncatedEnvelope",
        open_with="carol",
    ),
    Invalid(
        "chunks_swapped",
        C2,
        "chunks 1 and 2 swapped (same length, so only the STREAM nonces tell)",
        lambda v: _swapped_chunks(v[C2]),
        "AuthenticationFailed",
        "open",
        "AuthenticationFailed",
        open_with="carol",
    ),
    Invalid(
        "chunk_duplicated",
        C2,
        "chunk 1 written twice in place of chunks 1 and 2 (same length)",
        lambda v: _duplicated_chunk(v[C2]),
        "AuthenticationFailed",
        "open",
        "AuthenticationFailed",
        open_with="carol",
    ),
    Invalid(
        "stanza_swapped",
        T3,
        "bob's stanza replaced by bob's stanza from many_chunks (it opens, to another "
        "envelope's content key); opened with bob's key",
        lambda v: _set(v[T3], envelope.FIXED_HEADER_SIZE + envelope.STANZA_SIZE, _stanza(v[M], 1)),
        "AuthenticationFailed",
        "open",
        "AuthenticationFailed",
        open_with="bob",
    ),
    Invalid(
        "stanza_removed",
        T3,
        "carol's stanza (the third) removed and the recipient count set to 2; opened with "
        "alice's key",
        lambda v: _remove_stanza(v[T3], 2),
        "AuthenticationFailed",
        "open",
        "AuthenticationFailed",
    ),
    Invalid(
        "header_mac_flipped",
        E,
        "the last byte of the header MAC xor 0x01",
        lambda v: _xor(v[E], _hsize(v[E]) - 1),
        "AuthenticationFailed",
        "open",
        "AuthenticationFailed",
    ),
    Invalid(
        "extra_trailing_byte",
        E,
        "one 0x00 byte appended after the last chunk",
        lambda v: v[E] + b"\x00",
        "MalformedEnvelope",
        "inspect",
        "MalformedEnvelope",
    ),
    Invalid(
        "padded_size_wrong",
        E,
        "declared padded size changed from 65536 to 67584 (the next valid Padme size) and "
        "2064 bytes appended so the length matches it: only the header MAC catches it",
        lambda v: _padded_size_wrong(v[E]),
        "AuthenticationFailed",
        "open",
        "AuthenticationFailed",
    ),
    Invalid(
        "recipient_count_0",
        E,
        "byte 6 (the recipient count) set to 0",
        lambda v: _set(v[E], 6, b"\x00"),
        "MalformedEnvelope",
        "inspect",
        "MalformedEnvelope",
    ),
    Invalid(
        "recipient_count_17",
        E,
        "byte 6 (the recipient count) set to 17",
        lambda v: _set(v[E], 6, bytes([17])),
        "MalformedEnvelope",
        "inspect",
        "MalformedEnvelope",
    ),
    Invalid(
        "wrong_key",
        E,
        "the valid envelope, unchanged, opened with a key it was not sealed to",
        lambda v: v[E],
        "NoMatchingKey",
        "open",
        "NoMatchingKey",
        open_with=OUTSIDER_LABEL,
        reuse_base_file=True,
    ),
    Invalid(
        "stanza_removed_own_key",
        T3,
        "as stanza_removed (file shared), opened with carol's key, whose stanza is gone",
        lambda v: _remove_stanza(v[T3], 2),
        "NoMatchingKey",
        "open",
        "NoMatchingKey",
        open_with="carol",
    ),
)


def invalid_record(item: Invalid, data: bytes, file: str) -> dict[str, Any]:
    return {
        "name": item.name,
        "base": item.base,
        "mutation": item.mutation,
        "envelope_file": file,
        "envelope_size": len(data),
        "envelope_sha256": hashlib.sha256(data).hexdigest(),
        "expected_error": item.expected_error,
        "expected_by": item.expected_by,
        "open_error": item.open_error,
        "open_with": {"label": item.open_with, "secret_key_hex": secret_key(item.open_with).hex()},
    }


# --- tables -----------------------------------------------------------------------------------

FINGERPRINT_KEYS = (
    ("X25519 base point (u = 9)", bytes([9]) + bytes(31)),
    ("bytes 0x00..0x1f", bytes(range(32))),
    ("32 bytes of 0xff", b"\xff" * 32),
    *((f"public key of {label}", public_key(secret_key(label))) for label in RECIPIENT_LABELS),
)

PADME_LENGTHS = (0, 1, 2, 3, 7, 8, 9, 10, 17, 100, 255, 256, 1000, 1025, 4097, 65536, 65537,
                 100000, 1 << 20, (1 << 20) + 1, 10**9, (1 << 40) - 1)  # fmt: skip

CONTENT_SIZES = (0, 1, 100, 1000, 65527, 65528, 65529, 65536, 100000, 131063, 131064, 131065,
                 204803, 1 << 20, 10 << 20, 100 << 20, 1 << 30)  # fmt: skip


def tables() -> dict[str, Any]:
    fingerprints = [
        {
            "description": what,
            "public_key_hex": pk.hex(),
            "key_id_hex": envelope.key_id(pk).hex(),
            "fingerprint": envelope.fingerprint(pk),
        }
        for what, pk in FINGERPRINT_KEYS
    ]
    padme = [{"length": n, "padme": envelope.padme(n)} for n in PADME_LENGTHS]
    sizes = []
    for n in CONTENT_SIZES:
        padded = envelope.padded_size(n)
        sizes.append(
            {"content_size": n, "padded_size": padded, "chunk_count": envelope.chunk_count(padded)}
        )
    return {"fingerprints": fingerprints, "padme": padme, "padded_sizes": sizes}


def constants() -> dict[str, Any]:
    e = envelope
    return {
        "version": e.VERSION,
        "magic_hex": e.MAGIC.hex(),
        "chunk_size": e.CHUNK_SIZE,
        "tag_size": e.TAG_SIZE,
        "key_id_size": e.KEY_ID_SIZE,
        "stanza_size": e.STANZA_SIZE,
        "mac_size": e.MAC_SIZE,
        "fixed_header_size": e.FIXED_HEADER_SIZE,
        "length_prefix_size": e.LENGTH_PREFIX_SIZE,
        "pad_floor": e.PAD_FLOOR,
        "max_recipients": e.MAX_RECIPIENTS,
        "paths": {p.name.lower(): int(p) for p in e.SealPath},
        "fingerprint_domain": e.FINGERPRINT_DOMAIN.decode(),
        "kdf": "HKDF-SHA256, no salt, 32-byte output, input key = the 32-byte content key",
        "header_mac_info": e.HEADER_KEY_INFO.decode(),
        "payload_key_info": e.PAYLOAD_KEY_INFO.decode(),
    }


def _dump(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def build() -> dict[str, bytes]:
    """Every file of ``tests/vectors/v1/``, by path relative to it."""
    files: dict[str, bytes] = {}
    sealed: dict[str, bytes] = {}
    records = []
    for case in CASES:
        env = case.seal()
        sealed[case.name] = env
        record = case_record(case, env)
        records.append(record)
        files[record["envelope_file"]] = env
        if "plaintext_file" in record:
            files[record["plaintext_file"]] = case.plaintext
    invalid = []
    by_content: dict[bytes, str] = {}
    for item in INVALID:
        data = item.mutate(sealed)
        if item.reuse_base_file:
            file = f"{item.base}.env"
        else:
            # Two entries with the same bytes (one file, opened with different keys) share it.
            file = by_content.setdefault(data, f"invalid/{item.name}.env")
            files[file] = data
        invalid.append(invalid_record(item, data, file))
    document = {
        "description": "Known-answer vectors for the reprisals-portal envelope, version 1. "
        "See tests/vectors/README.md; regenerate with tests/vectors/generate.py.",
        "constants": constants(),
        "cases": records,
        **tables(),
    }
    files["vectors.json"] = _dump(document)
    files |= attachment_files()
    files["invalid.json"] = _dump(
        {
            "description": "Envelopes that every implementation must refuse, each with the "
            "error class (named as in portal/envelope.py) and the stage that must refuse it.",
            "vectors": invalid,
        }
    )
    return files


# --- attachments (FORMAT.md §15.6) -------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentCase:
    name: str
    description: str
    data: bytes
    given_name: str  # what the browser gave: the sealer records it cut and cleaned
    given_media_type: str
    sealed_to: tuple[str, ...] = ()  # recipients of the known-answer envelope, if there is one
    path: envelope.SealPath = envelope.SealPath.BROWSER

    @property
    def file_id(self) -> str:
        return label_hash("attachment id", self.name)[:16].hex()

    def encoder(self) -> attachment.Encoder:
        return attachment.Encoder(
            io.BytesIO(self.data),
            len(self.data),
            name=self.given_name,
            media_type=self.given_media_type,
            file_id=self.file_id,
        )


ATTACHMENT_CASES = (
    AttachmentCase(
        "attachment_photo",
        "A 1000-byte file whose name needs JSON escapes (a quote, a backslash, U+0001) and "
        "non-ASCII text, sealed in the browser to alice and bob.",
        pattern("attachment_photo", 1000),
        'Фото "суд"\\\x01 ñ.JPG',
        "image/jpeg",
        sealed_to=("alice", "bob"),
    ),
    AttachmentCase(
        "attachment_empty_unnamed",
        'An empty file with an empty name (recorded as "unnamed") and no media type.',
        b"",
        "",
        "",
    ),
    AttachmentCase(
        "attachment_long_name",
        "A 3-byte file whose 1200-code-point name (four-byte characters) is cut to 1000, and "
        'whose 300-character media type is recorded as "" (never cut).',
        b"abc",
        "\U0001f4c4" * 1200,
        "x/" + "y" * 298,
    ),
)

BAD_FILE = b"abc"


def _bad_content(meta: dict[str, Any] | bytes, declared: int = len(BAD_FILE)) -> bytes:
    raw = meta if isinstance(meta, bytes) else json.dumps(meta, ensure_ascii=False).encode()
    return attachment.MAGIC + declared.to_bytes(8, "big") + BAD_FILE + raw


def _bad_meta(**changes: Any) -> dict[str, Any]:
    meta = attachment.Metadata(
        "00112233445566778899aabbccddeeff", "text/plain", "a.txt",
        hashlib.sha256(BAD_FILE).hexdigest(), len(BAD_FILE),
    ).to_json()  # fmt: skip
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


INVALID_ATTACHMENTS: tuple[tuple[str, str, bytes, str], ...] = (
    ("report", "a report document, not an attachment", b'{"type":"reprisal-report"}',
     "NotAnAttachment"),
    ("wrong_magic", "UNRPFILX instead of UNRPFILE", b"UNRPFILX" + _bad_content(_bad_meta())[8:],
     "NotAnAttachment"),
    ("too_short", "12 bytes: the size is cut short", _bad_content(_bad_meta())[:12],
     "MalformedAttachment"),
    ("size_beyond_content", "S is 1000 but the content ends long before",
     _bad_content(_bad_meta(size=1000), 1000), "MalformedAttachment"),
    ("metadata_one_byte", "M is 1", _bad_content(b"{"), "MalformedAttachment"),
    ("metadata_not_json", "the metadata is not JSON", _bad_content(b"nope"),
     "MalformedAttachment"),
    ("metadata_repeated_member", "size appears twice",
     _bad_content(json.dumps(_bad_meta()).encode()[:-1] + b', "size": 3}'),
     "MalformedAttachment"),
    ("metadata_extra_member", "an unexpected member path",
     _bad_content(_bad_meta(path="../../x")), "MalformedAttachment"),
    ("metadata_missing_member", "no sha256", _bad_content(_bad_meta(sha256=None)),
     "MalformedAttachment"),
    ("size_mismatch", "size 2 for a 3-byte file", _bad_content(_bad_meta(size=2)),
     "MalformedAttachment"),
    ("size_as_string", "size \"3\"", _bad_content(_bad_meta(size="3")), "MalformedAttachment"),
    ("version_true", "version true (not the integer 1)", _bad_content(_bad_meta(version=True)),
     "MalformedAttachment"),
    ("id_upper_case", "id in upper-case hex",
     _bad_content(_bad_meta(id="00112233445566778899AABBCCDDEEFF")), "MalformedAttachment"),
    ("name_empty", "an empty name", _bad_content(_bad_meta(name="")), "MalformedAttachment"),
    ("name_1001", "a name of 1001 code points", _bad_content(_bad_meta(name="n" * 1001)),
     "MalformedAttachment"),
    ("media_type_256", "a media type of 256 characters",
     _bad_content(_bad_meta(media_type="m" * 256)), "MalformedAttachment"),
    ("sha256_mismatch", "the SHA-256 of other bytes",
     _bad_content(_bad_meta(sha256=hashlib.sha256(b"abd").hexdigest())), "HashMismatch"),
)  # fmt: skip


def attachment_files() -> dict[str, bytes]:
    """``attachments.json`` and the files it names."""
    files: dict[str, bytes] = {}
    valid = []
    metas = []
    for case in ATTACHMENT_CASES:
        encoder = case.encoder()
        content = b"".join(encoder)
        meta = encoder.metadata
        metas.append(meta)
        record: dict[str, Any] = {
            "name": case.name,
            "description": case.description,
            "given_name": case.given_name,
            "given_media_type": case.given_media_type,
            "id": meta.id,
            "recorded_name": meta.name,
            "media_type": meta.media_type,
            "file_size": len(case.data),
            "file_sha256": meta.sha256,
            "file_hex": case.data.hex(),
            "metadata_json": attachment.encode_metadata(meta).decode("utf-8"),
            "metadata_size": len(attachment.encode_metadata(meta)),
            "content_length": len(content),
            "content_sha256": hashlib.sha256(content).hexdigest(),
            "desk_file_name": attachment.file_name(meta),
        }
        if case.sealed_to:
            sealed = Case(case.name, case.description, case.sealed_to, case.path, content)
            env = sealed.seal()
            files[f"{case.name}.env"] = env
            if "plaintext_file" in (envelope_record := case_record(sealed, env)):
                files[envelope_record["plaintext_file"]] = content
            record["envelope"] = envelope_record
        valid.append(record)
    invalid = [
        {"name": name, "description": what, "content_hex": data.hex(), "expected_error": error}
        for name, what, data, error in INVALID_ATTACHMENTS
    ]
    reply = public_key(secret_key("alice"))
    fields = {"account": "Photos of the summons attached."}
    files["attachments.json"] = _dump(
        {
            "description": "Known answers for the attachment content (docs/FORMAT.md §15.6) "
            "and the report's attachments member (§15.1). Regenerate with generate.py.",
            "constants": {
                "magic_hex": attachment.MAGIC.hex(),
                "prefix_size": attachment.PREFIX_SIZE,
                "min_metadata": attachment.MIN_METADATA,
                "max_metadata": attachment.MAX_METADATA,
                "max_name_code_points": attachment.MAX_NAME,
                "max_media_type": attachment.MAX_MEDIA_TYPE,
                "max_listed": attachment.MAX_LISTED,
                "type": attachment.ATTACHMENT_TYPE,
                "version": attachment.ATTACHMENT_VERSION,
            },
            "valid": valid,
            "invalid": invalid,
            "report": {
                "fields": fields,
                "reply_public_key_hex": reply.hex(),
                "sealed_by": "browser",
                "attachments": [m.listing() for m in metas[:2]],
                "document": json.dumps(
                    report.document(fields, reply, "browser", metas[:2]),
                    ensure_ascii=False,
                    separators=(",", ":"),
                ),
            },
        }
    )
    return files


# Files in v1/ that another generator writes and checks (tests/vectors/receipts.py and
# tests/vectors/signatures.py).
OTHER_GENERATORS = frozenset({"receipts.json", "signatures.json"})


def on_disk(root: Path = OUT) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    files = (p for p in root.rglob("*") if p.is_file())
    found = {p.relative_to(root).as_posix(): p for p in files}
    return {name: p.read_bytes() for name, p in found.items() if name not in OTHER_GENERATORS}


def differences(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """Human-readable differences between what the generator makes and what is on disk."""
    problems = [f"missing: {name}" for name in sorted(expected.keys() - actual.keys())]
    problems += [f"not generated (stale): {name}" for name in sorted(actual.keys() - expected)]
    problems += [
        f"differs: {name}"
        for name in sorted(expected.keys() & actual.keys())
        if expected[name] != actual[name]
    ]
    return problems


def write(files: dict[str, bytes], root: Path = OUT) -> None:
    for name in on_disk(root).keys() - files.keys():
        (root / name).unlink()
    for name, data in sorted(files.items()):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="verify the files on disk instead of writing them"
    )
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        problems = differences(files, on_disk())
        for problem in problems:
            print(f"generate.py --check: {problem}", file=sys.stderr)
        if problems:
            print(
                "The vectors are out of date: run .venv/bin/python tests/vectors/generate.py",
                file=sys.stderr,
            )
            return 1
        print(f"generate.py --check: {len(files)} files match")
        return 0
    write(files)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files ({total} bytes) to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
