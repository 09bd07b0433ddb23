"""portal.envelope: round trips, streaming, tampering, truncation, limits, hygiene, memory.

Real crypto throughout. Nothing here measures time; the 64 MiB test measures
Python allocations (tracemalloc), not speed.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import io
import os
import random
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey, SealedBox

from portal import envelope
from portal.envelope import (
    AuthenticationFailed,
    EnvelopeError,
    InvalidRecipientKey,
    MalformedEnvelope,
    NoMatchingKey,
    NotAnEnvelope,
    SealPath,
    SizeMismatch,
    TruncatedEnvelope,
    UnsupportedVersion,
)

CHUNK = envelope.CHUNK_SIZE
SEALED_CHUNK = CHUNK + envelope.TAG_SIZE
ONE_CHUNK_CONTENT = CHUNK - envelope.LENGTH_PREFIX_SIZE  # 65528: fills exactly one chunk
MANY = 200 * 1024 + 3  # four chunks, the last one short
DESK = SealPath.DESK

# A pool of real key pairs, made once: key generation is cheap but hypothesis runs many examples.
POOL = [PrivateKey.generate() for _ in range(8)]
ALICE, BOB, CAROL, OUTSIDER = POOL[:4]


def pk(identity: PrivateKey) -> bytes:
    return bytes(identity.public_key)


def seal_to(data: bytes, *identities: PrivateKey, path: SealPath = DESK) -> bytes:
    return envelope.seal(data, [pk(i) for i in identities], path)


def chunks_of(env: bytes) -> tuple[bytes, list[bytes]]:
    size = envelope.parse_header(env).header_size
    body = env[size:]
    return env[:size], [body[i : i + SEALED_CHUNK] for i in range(0, len(body), SEALED_CHUNK)]


def hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class FixedRandom:
    def __init__(self, data: bytes) -> None:
        self.data, self.used = data, 0

    def __call__(self, n: int) -> bytes:
        out = self.data[self.used : self.used + n]
        assert len(out) == n
        self.used += n
        return out


class OneWay(io.RawIOBase):
    """A readable stream that cannot seek (like a pipe or a socket)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(min(len(buffer), 4093))  # short reads on purpose
        buffer[: len(data)] = data
        return len(data)


def fails(env: bytes, identities: list[PrivateKey]) -> type[EnvelopeError]:
    """Open ``env`` and return the error class; fail the test if any plaintext comes back."""
    try:
        plain = envelope.open_bytes(env, identities)
    except EnvelopeError as err:
        return type(err)
    pytest.fail(f"the altered envelope opened and gave {len(plain)} bytes of plaintext")


def inspect_error(env: bytes) -> type[EnvelopeError] | None:
    try:
        envelope.inspect(io.BytesIO(env))
    except EnvelopeError as err:
        return type(err)
    return None


@pytest.fixture(scope="module")
def many() -> tuple[bytes, bytes]:
    """A four-chunk envelope to ALICE and BOB, and its plaintext."""
    data = os.urandom(MANY)
    return data, seal_to(data, ALICE, BOB)


@pytest.fixture(scope="module")
def small() -> tuple[bytes, bytes]:
    """A floor-sized (one chunk) envelope to ALICE, and its plaintext."""
    data = "Un informe corto. Короткий отчёт. تقرير قصير.".encode()
    return data, seal_to(data, ALICE)


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        ONE_CHUNK_CONTENT - 1,
        ONE_CHUNK_CONTENT,
        ONE_CHUNK_CONTENT + 1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK - 8,
        2 * CHUNK - 7,
        3 * (1 << 20) + 5,
    ],
)
def test_round_trip(size: int) -> None:
    data = os.urandom(size)
    env = seal_to(data, ALICE)
    assert envelope.open_bytes(env, [ALICE]) == data
    header = envelope.inspect(io.BytesIO(env))
    assert header.padded_size == envelope.padded_size(size)
    assert header.total_size == len(env)
    assert len(env) == header.header_size + header.padded_size + 16 * header.chunk_count
    assert header.key_ids == (envelope.key_id(pk(ALICE)),)


def test_content_that_looks_like_padding_survives() -> None:
    for data in (b"\x00", bytes(100), bytes(ONE_CHUNK_CONTENT), b"a" + bytes(70000)):
        assert envelope.open_bytes(seal_to(data, ALICE), [ALICE]) == data


def test_every_path_is_recorded() -> None:
    for path in SealPath:
        env = seal_to(b"x", ALICE, path=path)
        assert envelope.inspect(io.BytesIO(env)).path is path
        out = io.BytesIO()
        assert envelope.open_stream(io.BytesIO(env), out, [ALICE]).path is path


def test_sealing_twice_gives_different_envelopes() -> None:
    a, b = seal_to(b"same", ALICE), seal_to(b"same", ALICE)
    assert a != b
    assert len(a) == len(b)


@pytest.mark.parametrize("count", [1, 3])
def test_each_recipient_opens(count: int) -> None:
    data = os.urandom(CHUNK + 1)
    group = POOL[:count]
    env = seal_to(data, *group)
    for identity in group:
        assert envelope.open_bytes(env, [identity]) == data
    assert envelope.open_bytes(env, [OUTSIDER, group[-1]]) == data  # any matching key will do
    assert fails(env, [OUTSIDER]) is NoMatchingKey


def test_sixteen_recipients_are_allowed() -> None:
    keys = [PrivateKey.generate() for _ in range(16)]
    env = envelope.seal(b"x", [pk(k) for k in keys], DESK)
    assert envelope.open_bytes(env, [keys[0]]) == b"x"
    assert envelope.open_bytes(env, [keys[-1]]) == b"x"


# --- streaming ----------------------------------------------------------------------------------


def test_stream_between_bytesio_objects() -> None:
    data = os.urandom(MANY)
    sealed = io.BytesIO()
    header = envelope.seal_stream(io.BytesIO(data), sealed, [pk(ALICE)], len(data), DESK)
    assert header.chunk_count == 4
    sealed.seek(0)
    assert envelope.inspect(sealed).chunk_count == 4
    sealed.seek(0)
    out = io.BytesIO()
    envelope.open_stream(sealed, out, [ALICE])
    assert out.getvalue() == data


def test_stream_between_real_files(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 12345)
    (tmp_path / "in").write_bytes(data)
    with (tmp_path / "in").open("rb") as src, (tmp_path / "env").open("wb") as dst:
        envelope.seal_stream(src, dst, [pk(ALICE), pk(BOB)], len(data), SealPath.SERVER)
    with (tmp_path / "env").open("rb") as src:
        header = envelope.inspect(src)
    assert header.total_size == (tmp_path / "env").stat().st_size
    for identity in (ALICE, BOB):
        with (tmp_path / "env").open("rb") as src, (tmp_path / "out").open("wb") as dst:
            envelope.open_stream(src, dst, [identity])
        assert (tmp_path / "out").read_bytes() == data


@pytest.mark.parametrize("block", [1, 7, 4093, CHUNK - 1, CHUNK + 1, 100_003])
def test_seal_from_iterators_of_odd_blocks(block: int) -> None:
    data = os.urandom(MANY if block > 1 else 3000)

    def blocks() -> Iterator[bytes]:
        for i in range(0, len(data), block):
            yield b""  # empty blocks are allowed and change nothing
            yield data[i : i + block]

    rng_bytes = os.urandom(64)
    out = io.BytesIO()
    envelope.seal_stream(blocks(), out, [pk(ALICE)], len(data), DESK, rng=FixedRandom(rng_bytes))
    # Splitting the input differently changes nothing in the output.
    assert out.getvalue() == envelope.seal(data, [pk(ALICE)], DESK, rng=FixedRandom(rng_bytes))
    assert envelope.open_bytes(out.getvalue(), [ALICE]) == data


def test_seal_accepts_bytearray_and_memoryview_blocks() -> None:
    data = os.urandom(70_000)
    blocks = [bytearray(data[:30_000]), memoryview(data)[30_000:]]
    out = io.BytesIO()
    envelope.seal_stream(blocks, out, [pk(ALICE)], len(data), DESK)
    assert envelope.open_bytes(out.getvalue(), [ALICE]) == data


def test_non_seekable_streams(many: tuple[bytes, bytes]) -> None:
    data, env = many
    sealed = io.BytesIO()
    envelope.seal_stream(io.BufferedReader(OneWay(data)), sealed, [pk(ALICE)], len(data), DESK)
    assert envelope.inspect(io.BufferedReader(OneWay(sealed.getvalue()))).chunk_count == 4
    out = io.BytesIO()
    envelope.open_stream(OneWay(sealed.getvalue()), out, [ALICE])  # raw, short reads
    assert out.getvalue() == data
    for cut in (len(env) - 1, len(env) + 1):
        stream = OneWay(env[:cut] if cut < len(env) else env + b"\x00")
        with pytest.raises((TruncatedEnvelope, MalformedEnvelope)):
            envelope.inspect(io.BufferedReader(stream))


def test_inspect_reports_the_header(many: tuple[bytes, bytes]) -> None:
    _, env = many
    header = envelope.inspect(io.BytesIO(env))
    assert header.padded_size == envelope.padded_size(MANY) == 208896
    assert header.chunk_count == 4
    assert header.key_ids == (envelope.key_id(pk(ALICE)), envelope.key_id(pk(BOB)))
    assert header.header_size == 16 + 2 * 96 + 32


# --- size mismatches ----------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [0, 99, 101, CHUNK, 200])
def test_size_mismatch_from_an_iterator(declared: int) -> None:
    data = os.urandom(100)
    with pytest.raises(SizeMismatch) as caught:
        envelope.seal_stream(
            iter([data[:50], data[50:]]), io.BytesIO(), [pk(ALICE)], declared, DESK
        )
    assert caught.value.hint


@pytest.mark.parametrize("delta", [-1, 1, -CHUNK, CHUNK])
def test_size_mismatch_from_a_file(tmp_path: Path, delta: int) -> None:
    data = os.urandom(2 * CHUNK)
    (tmp_path / "in").write_bytes(data)
    with (tmp_path / "in").open("rb") as src, pytest.raises(SizeMismatch):
        envelope.seal_stream(src, io.BytesIO(), [pk(ALICE)], len(data) + delta, DESK)


def test_negative_and_huge_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        envelope.seal_stream(iter([]), io.BytesIO(), [pk(ALICE)], -1, DESK)
    out = io.BytesIO()
    with pytest.raises(ValueError, match="larger"):
        envelope.seal_stream(iter([]), out, [pk(ALICE)], envelope.MAX_PADDED_SIZE, DESK)
    assert out.getvalue() == b""


# --- recipients ---------------------------------------------------------------------------------


class NoRandomness:
    """An ``rng`` that fails the test if the sealer draws from it."""

    def __call__(self, n: int) -> bytes:
        pytest.fail("randomness was drawn for a request that must be refused first")


def refused(recipients: list[bytes], match: str) -> None:
    out = io.BytesIO()
    with pytest.raises(InvalidRecipientKey, match=match) as caught:
        envelope.seal_stream([b"x"], out, recipients, 1, DESK, rng=NoRandomness())
    assert out.getvalue() == b""
    assert isinstance(caught.value, ValueError)
    assert caught.value.hint


def test_the_same_recipient_twice_is_refused() -> None:
    refused([pk(ALICE), pk(BOB), pk(ALICE)], "twice")


@pytest.mark.parametrize("count", [0, 17])
def test_zero_or_seventeen_recipients_are_refused(count: int) -> None:
    refused([pk(PrivateKey.generate()) for _ in range(count)], "1 to 16")


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_recipient_keys_of_the_wrong_length_are_refused(size: int) -> None:
    refused([pk(ALICE), b"\x09" * size], "32 bytes")


P = 2**255 - 19
LOW_ORDER_U = [
    0,
    1,
    P - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
]


@pytest.mark.parametrize("u", LOW_ORDER_U, ids=["0", "1", "p-1", "order-8-a", "order-8-b"])
def test_low_order_recipient_keys_are_refused(u: int) -> None:
    refused([u.to_bytes(32, "little")], "low-order")


@pytest.mark.parametrize("u", [P, P + 1, 2**255 - 1, 2**255 + 9, 2**256 - 1])
def test_non_canonical_recipient_keys_are_refused(u: int) -> None:
    refused([u.to_bytes(32, "little")], "canonical")


@pytest.mark.parametrize("path", [0, 4, 7, "browser"])
def test_an_unknown_sealing_path_is_refused_before_anything_is_written(path: object) -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError):
        envelope.seal_stream([b"x"], out, [pk(ALICE)], 1, path, rng=NoRandomness())
    assert out.getvalue() == b""


def test_check_public_key_accepts_real_keys() -> None:
    for identity in POOL:
        envelope.check_public_key(pk(identity))
    envelope.check_public_key(bytes([9]) + bytes(31))  # the base point
    envelope.check_public_key((P - 2).to_bytes(32, "little"))  # canonical, not low order


# --- sealed boxes are libsodium's crypto_box_seal ------------------------------------------------


def test_pynacl_sealedbox_opens_every_wrapped_key() -> None:
    content_key = os.urandom(32)
    group = [ALICE, BOB, CAROL]
    rng = FixedRandom(content_key + os.urandom(32 * len(group)))
    env = envelope.seal(b"report", [pk(i) for i in group], DESK, rng=rng)
    for index, identity in enumerate(group):
        at = envelope.FIXED_HEADER_SIZE + index * envelope.STANZA_SIZE
        stanza = env[at : at + envelope.STANZA_SIZE]
        assert stanza[:16] == envelope.key_id(pk(identity))
        assert SealedBox(identity).decrypt(stanza[16:]) == content_key


def test_a_stanza_made_by_pynacl_sealedbox_opens() -> None:
    content_key = os.urandom(32)
    data = b"sealed by someone else's crypto_box_seal"
    env = envelope.seal(data, [pk(ALICE)], DESK, rng=FixedRandom(content_key + os.urandom(32)))
    header = envelope.parse_header(env)
    stanza = envelope.key_id(pk(ALICE)) + SealedBox(ALICE.public_key).encrypt(content_key)
    assert len(stanza) == envelope.STANZA_SIZE
    body = env[:16] + stanza
    mac = hmac.digest(hkdf(content_key, envelope.HEADER_KEY_INFO), body, "sha256")
    rebuilt = body + mac + env[header.header_size :]
    assert rebuilt != env  # a fresh ephemeral key
    assert envelope.open_bytes(rebuilt, [ALICE]) == data


# --- a hand-made sealer, to reach the checks behind the MAC --------------------------------------


def hand_sealed(padded_plain: bytes, *, last_flags: list[bool] | None = None) -> bytes:
    """Seal an arbitrary padded plaintext to ALICE with the format's primitives."""
    content_key = os.urandom(32)
    rng = FixedRandom(content_key + os.urandom(32))
    header, drawn = envelope.encode_header([pk(ALICE)], len(padded_plain), DESK, rng)
    assert drawn == content_key
    aead = AESGCM(hkdf(content_key, envelope.PAYLOAD_KEY_INFO))
    pieces = [padded_plain[i : i + CHUNK] for i in range(0, len(padded_plain), CHUNK)]
    flags = last_flags or [i == len(pieces) - 1 for i in range(len(pieces))]
    sealed = [
        aead.encrypt(i.to_bytes(11, "big") + bytes([flag]), piece, None)
        for i, (piece, flag) in enumerate(zip(pieces, flags, strict=True))
    ]
    return header + b"".join(sealed)


def padded(content: bytes, size: int | None = None, total: int | None = None) -> bytes:
    total = total or envelope.padded_size(len(content))
    prefix = (len(content) if size is None else size).to_bytes(8, "big")
    return (prefix + content).ljust(total, b"\x00")


def test_the_hand_made_sealer_agrees_with_the_module() -> None:
    for content in (b"", b"abc", os.urandom(CHUNK + 5)):
        assert envelope.open_bytes(hand_sealed(padded(content)), [ALICE]) == content


def test_nonzero_padding_is_refused() -> None:
    plain = bytearray(padded(b"abc"))
    plain[-1] = 1
    assert fails(hand_sealed(bytes(plain)), [ALICE]) is MalformedEnvelope


@pytest.mark.parametrize("declared", [2, ONE_CHUNK_CONTENT + 1, CHUNK, 10**6, 2**64 - 1])
def test_a_length_prefix_that_disagrees_with_the_padding_is_refused(declared: int) -> None:
    # 2: the prefix cuts the content short, so "c" lands in the padding; the others declare a
    # size whose padded size is not the one in the header.
    plain = padded(b"abc", size=declared, total=CHUNK)
    assert fails(hand_sealed(plain), [ALICE]) is MalformedEnvelope


def test_stream_flags_are_checked() -> None:
    plain = padded(os.urandom(CHUNK + 100))
    assert envelope.open_bytes(hand_sealed(plain), [ALICE])  # two chunks, flags (0, 1)
    for flags in ([False, False], [True, True], [True, False]):
        assert fails(hand_sealed(plain, last_flags=flags), [ALICE]) is AuthenticationFailed


# --- tampering ----------------------------------------------------------------------------------


def test_every_single_byte_flip_is_detected(small: tuple[bytes, bytes]) -> None:
    _, env = small
    assert len(env) == 144 + CHUNK + 16  # floor-sized: one chunk
    buf = bytearray(env)
    leaked: list[int] = []
    for at in range(len(buf)):
        buf[at] ^= 0x01
        try:
            envelope.open_bytes(bytes(buf), [ALICE])
        except EnvelopeError:
            pass
        else:
            leaked.append(at)  # plaintext came back from an altered envelope
        buf[at] ^= 0x01
    assert leaked == []
    assert envelope.open_bytes(bytes(buf), [ALICE]) == small[0]


def test_every_header_byte_flip_fails_for_every_recipient() -> None:
    group = [ALICE, BOB, CAROL]
    env = seal_to(b"three", *group)
    size = envelope.parse_header(env).header_size
    for at in range(size):
        for mask in (0x01, 0x80):
            altered = bytearray(env)
            altered[at] ^= mask
            for identity in group:
                fails(bytes(altered), [identity])


def test_other_bit_flips_across_the_envelope(many: tuple[bytes, bytes]) -> None:
    _, env = many
    for at in range(0, len(env), 997):
        for mask in (0x02, 0x40, 0xFF):
            altered = bytearray(env)
            altered[at] ^= mask
            fails(bytes(altered), [BOB])


@pytest.mark.parametrize(
    ("field", "value", "by_inspect", "by_open"),
    [
        ("version", 0, UnsupportedVersion, UnsupportedVersion),
        ("version", 2, UnsupportedVersion, UnsupportedVersion),
        ("version", 255, UnsupportedVersion, UnsupportedVersion),
        ("path", 0, MalformedEnvelope, MalformedEnvelope),
        ("path", 4, MalformedEnvelope, MalformedEnvelope),
        ("path", SealPath.BROWSER, None, AuthenticationFailed),  # valid but authenticated
        ("exponent", 17, MalformedEnvelope, MalformedEnvelope),
        ("exponent", 0, MalformedEnvelope, MalformedEnvelope),
        ("padded", 65537, MalformedEnvelope, MalformedEnvelope),  # not a Padme size
        ("padded", 32768, MalformedEnvelope, MalformedEnvelope),  # under the floor
        ("padded", 67584, TruncatedEnvelope, AuthenticationFailed),  # valid, file too short
        ("padded", 2**41, MalformedEnvelope, MalformedEnvelope),  # over the limit
    ],
)
def test_header_fields(
    small: tuple[bytes, bytes],
    field: str,
    value: int,
    by_inspect: type[EnvelopeError] | None,
    by_open: type[EnvelopeError],
) -> None:
    _, env = small
    version, magic, path, count, exponent, size = struct.unpack(">B4sBBBQ", env[:16])
    fields = {"version": version, "path": path, "exponent": exponent, "padded": size}
    fields[field] = value
    fixed = struct.pack(
        ">B4sBBBQ", fields["version"], magic, fields["path"], count, fields["exponent"], size
    )
    fixed = fixed[:8] + fields["padded"].to_bytes(8, "big")
    altered = fixed + env[16:]
    assert inspect_error(altered) is by_inspect
    assert fails(altered, [ALICE]) is by_open


def test_unknown_version_says_so(small: tuple[bytes, bytes]) -> None:
    _, env = small
    with pytest.raises(UnsupportedVersion, match="version 2") as caught:
        envelope.inspect(io.BytesIO(b"\x02" + env[1:]))
    assert "Upgrade" in caught.value.hint


@pytest.mark.parametrize("data", [b"", b"\x00", b"hello world, not an envelope at all" * 5])
def test_not_an_envelope(data: bytes) -> None:
    with pytest.raises(NotAnEnvelope) as caught:
        envelope.inspect(io.BytesIO(data))
    assert caught.value.hint
    assert fails(data, [ALICE]) is NotAnEnvelope
    with pytest.raises(NotAnEnvelope):
        envelope.read_header(io.BytesIO(data))


def test_wrong_magic(small: tuple[bytes, bytes]) -> None:
    _, env = small
    assert inspect_error(env[:1] + b"UNRQ" + env[5:]) is NotAnEnvelope
    assert inspect_error(env[:1] + b"PK\x03\x04" + env[5:]) is NotAnEnvelope


@pytest.mark.parametrize("extra", [b"\x00", b"\x01" * 16, None])
def test_extra_bytes_are_refused(small: tuple[bytes, bytes], extra: bytes | None) -> None:
    _, env = small
    altered = env + (extra if extra is not None else env)  # None: a whole second envelope
    assert inspect_error(altered) is MalformedEnvelope
    assert fails(altered, [ALICE]) is MalformedEnvelope
    with pytest.raises(MalformedEnvelope):
        envelope.open_stream(OneWay(altered), io.BytesIO(), [ALICE])


def test_wrong_key(many: tuple[bytes, bytes]) -> None:
    _, env = many
    with pytest.raises(NoMatchingKey) as caught:
        envelope.open_bytes(env, [OUTSIDER, CAROL])
    assert "inspect" in caught.value.hint
    assert fails(env, []) is NoMatchingKey


# --- truncation ---------------------------------------------------------------------------------


def test_truncation_at_every_chunk_boundary_and_inside_chunks(many: tuple[bytes, bytes]) -> None:
    _, env = many
    size = envelope.parse_header(env).header_size
    cuts = set(range(2, size + 1))  # every byte of the header (0 and 1 bytes: see below)
    for k in range(4):
        start = size + k * SEALED_CHUNK
        cuts |= {start, start + 1, start + 100, start + CHUNK, start + SEALED_CHUNK - 1}
    cuts = {c for c in cuts if c < len(env)} | {len(env) - 1, len(env) - 16}
    boundaries = {size + k * SEALED_CHUNK for k in range(4)}
    assert boundaries <= cuts
    for cut in sorted(cuts):
        part = env[:cut]
        assert inspect_error(part) is TruncatedEnvelope, cut
        assert fails(part, [ALICE]) is TruncatedEnvelope, cut
    for cut in (0, 1):  # too little to tell an envelope from anything else
        assert fails(env[:cut], [ALICE]) is NotAnEnvelope


def test_truncation_while_streaming_from_a_file(tmp_path: Path, many: tuple[bytes, bytes]) -> None:
    _, env = many
    size = envelope.parse_header(env).header_size
    target = tmp_path / "cut.env"
    target.write_bytes(env[: size + 2 * SEALED_CHUNK])  # the last two chunks are missing
    with target.open("rb") as src, pytest.raises(TruncatedEnvelope, match="chunk 3 of 4"):
        envelope.open_stream(src, io.BytesIO(), [BOB])


# --- chunks reordered, duplicated, dropped, transplanted -----------------------------------------


def test_chunks_reordered(many: tuple[bytes, bytes]) -> None:
    _, env = many
    head, chunks = chunks_of(env)
    assert len(chunks) == 4
    for order in ([1, 0, 2, 3], [0, 2, 1, 3], [0, 1, 3, 2], [3, 2, 1, 0], [1, 2, 3, 0]):
        altered = head + b"".join(chunks[i] for i in order)
        assert inspect_error(altered) is None  # same length: only the nonces tell
        assert fails(altered, [ALICE]) is AuthenticationFailed


def test_chunks_duplicated(many: tuple[bytes, bytes]) -> None:
    _, env = many
    head, chunks = chunks_of(env)
    in_place = head + chunks[0] + chunks[0] + chunks[2] + chunks[3]
    assert inspect_error(in_place) is None
    assert fails(in_place, [ALICE]) is AuthenticationFailed
    inserted = head + chunks[0] + chunks[1] + chunks[1] + chunks[2] + chunks[3]
    assert inspect_error(inserted) is MalformedEnvelope
    assert fails(inserted, [ALICE]) is AuthenticationFailed


def test_a_middle_chunk_dropped(many: tuple[bytes, bytes]) -> None:
    _, env = many
    head, chunks = chunks_of(env)
    altered = head + chunks[0] + chunks[2] + chunks[3]
    assert inspect_error(altered) is TruncatedEnvelope
    assert fails(altered, [ALICE]) is AuthenticationFailed


def test_a_chunk_from_another_envelope_to_the_same_keys(many: tuple[bytes, bytes]) -> None:
    data, env = many
    head, chunks = chunks_of(env)
    _, other = chunks_of(seal_to(data, ALICE, BOB))
    altered = head + chunks[0] + other[1] + chunks[2] + chunks[3]
    assert fails(altered, [ALICE]) is AuthenticationFailed


# --- stanzas ------------------------------------------------------------------------------------


def stanza(env: bytes, index: int) -> bytes:
    at = envelope.FIXED_HEADER_SIZE + index * envelope.STANZA_SIZE
    return env[at : at + envelope.STANZA_SIZE]


def replace_stanza(env: bytes, index: int, new: bytes) -> bytes:
    at = envelope.FIXED_HEADER_SIZE + index * envelope.STANZA_SIZE
    return env[:at] + new + env[at + envelope.STANZA_SIZE :]


def test_a_stanza_swapped_for_one_from_another_envelope_to_the_same_key() -> None:
    env = seal_to(b"first", ALICE, BOB, CAROL)
    other = seal_to(b"second", BOB)
    altered = replace_stanza(env, 1, stanza(other, 0))
    assert inspect_error(altered) is None
    for identity in (ALICE, BOB, CAROL):
        assert fails(altered, [identity]) is AuthenticationFailed


def test_stanzas_reordered_within_the_header() -> None:
    env = seal_to(b"order", ALICE, BOB)
    altered = replace_stanza(replace_stanza(env, 0, stanza(env, 1)), 1, stanza(env, 0))
    for identity in (ALICE, BOB):
        assert fails(altered, [identity]) is AuthenticationFailed


def test_a_stanza_removed() -> None:
    env = seal_to(b"three", ALICE, BOB, CAROL)
    at = envelope.FIXED_HEADER_SIZE + 2 * envelope.STANZA_SIZE
    shorter = bytearray(env[:at] + env[at + envelope.STANZA_SIZE :])
    shorter[6] = 2
    altered = bytes(shorter)
    assert inspect_error(altered) is None
    assert fails(altered, [ALICE]) is AuthenticationFailed
    assert fails(altered, [BOB]) is AuthenticationFailed
    assert fails(altered, [CAROL]) is NoMatchingKey


def test_a_stanza_added_for_an_outsider() -> None:
    env = seal_to(b"two", ALICE, BOB)
    size = envelope.parse_header(env).header_size
    extra = envelope.key_id(pk(OUTSIDER)) + SealedBox(OUTSIDER.public_key).encrypt(os.urandom(32))
    grown = bytearray(env[: size - 32] + extra + env[size - 32 :])
    grown[6] = 3
    altered = bytes(grown)
    for identity in (ALICE, BOB, OUTSIDER):
        assert fails(altered, [identity]) is AuthenticationFailed


def test_a_stanza_retargeted_to_another_key_id() -> None:
    env = seal_to(b"x", ALICE, BOB)
    altered = replace_stanza(env, 0, envelope.key_id(pk(CAROL)) + stanza(env, 0)[16:])
    assert fails(altered, [CAROL]) is AuthenticationFailed
    assert fails(altered, [ALICE]) is NoMatchingKey
    duplicate = replace_stanza(env, 0, envelope.key_id(pk(BOB)) + stanza(env, 0)[16:])
    assert inspect_error(duplicate) is MalformedEnvelope


# --- errors carry hints -------------------------------------------------------------------------


def test_every_error_class_has_a_hint() -> None:
    classes = [
        NotAnEnvelope,
        envelope.UnsupportedVersion,
        MalformedEnvelope,
        TruncatedEnvelope,
        NoMatchingKey,
        AuthenticationFailed,
        SizeMismatch,
    ]
    hints = set()
    for cls in classes:
        assert issubclass(cls, EnvelopeError)
        err = cls("message")
        assert str(err) == "message"
        assert err.hint and err.hint != EnvelopeError.hint
        hints.add(err.hint)
    assert len(hints) == len(classes)
    assert NotAnEnvelope("m", "custom").hint == "custom"


# --- property tests -----------------------------------------------------------------------------

BOUNDARY_SIZES = [0, 1, ONE_CHUNK_CONTENT - 1, ONE_CHUNK_CONTENT, ONE_CHUNK_CONTENT + 1,
                  2 * CHUNK - 8, 2 * CHUNK - 7, 3 * CHUNK, 300 * 1024]  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(
    size=st.one_of(st.integers(0, 300 * 1024), st.sampled_from(BOUNDARY_SIZES)),
    seed=st.integers(0, 2**32 - 1),
    block=st.integers(1, 200_000),
)
def test_round_trip_property(size: int, seed: int, block: int) -> None:
    data = random.Random(seed).randbytes(size)
    out = io.BytesIO()
    pieces = (data[i : i + block] for i in range(0, size, block))
    envelope.seal_stream(pieces, out, [pk(ALICE)], size, DESK)
    env = out.getvalue()
    header = envelope.inspect(io.BytesIO(env))
    assert header.padded_size == envelope.padded_size(size)
    assert len(env) == header.total_size
    assert envelope.open_bytes(env, [ALICE]) == data


@settings(max_examples=20, deadline=None)
@given(
    chosen=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=5, unique=True),
    size=st.integers(0, 3 * CHUNK),
)
def test_recipient_sets_property(chosen: list[int], size: int) -> None:
    data = os.urandom(size)
    group = [POOL[i] for i in chosen]
    env = seal_to(data, *group)
    assert envelope.inspect(io.BytesIO(env)).key_ids == tuple(envelope.key_id(pk(i)) for i in group)
    for identity in group:
        assert envelope.open_bytes(env, [identity]) == data
    outsiders = [k for i, k in enumerate(POOL) if i not in chosen]
    assert fails(env, outsiders) is NoMatchingKey


# --- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_format_and_stability() -> None:
    key = bytes(range(32))
    assert envelope.fingerprint(key) == "07713 03652 32164 93455 00737 92608 20822 55058"
    assert envelope.key_id(key).hex() == "b5aa432521fb8387c22423ed5824e457"
    for identity in POOL:
        text = envelope.fingerprint(pk(identity))
        groups = text.split(" ")
        assert len(groups) == 8
        assert all(len(g) == 5 and g.isascii() and g.isdigit() for g in groups)
        assert envelope.fingerprint(pk(identity)) == text
        digest = hashlib.sha512(envelope.FINGERPRINT_DOMAIN + pk(identity)).digest()
        numbers = [int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 40, 5)]
        assert groups == [f"{n:05d}" for n in numbers]
        assert envelope.key_id(pk(identity)) == digest[:16]
    assert len({envelope.fingerprint(pk(i)) for i in POOL}) == len(POOL)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_fingerprint_refuses_wrong_lengths(size: int) -> None:
    with pytest.raises(ValueError):
        envelope.fingerprint(bytes(size))
    with pytest.raises(ValueError):
        envelope.key_id(bytes(size))


# --- hygiene: the crypto never pulls in the web stack -------------------------------------------

ENVELOPE_SOURCE = Path(envelope.__file__)


def test_envelope_imports_only_the_standard_library_nacl_and_cryptography() -> None:
    tree = ast.parse(ENVELOPE_SOURCE.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            assert node.module is not None
            modules.add(node.module.split(".")[0])
    outside = modules - set(sys.stdlib_module_names) - {"nacl", "cryptography"}
    assert outside == set()
    assert {"nacl", "cryptography"} <= modules


def test_importing_envelope_loads_no_web_or_database_module() -> None:
    code = (
        "import sys, portal.envelope\n"
        "web = {'flask', 'werkzeug', 'sqlalchemy', 'jinja2', 'flask_wtf', 'alembic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in web))\n"
        "print(sorted(m for m in sys.modules if m.startswith('portal')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    web, portal_modules = result.stdout.splitlines()
    assert web == "[]"
    assert portal_modules == "['portal', 'portal.envelope']"


# --- constant memory ----------------------------------------------------------------------------


class HashSink:
    """A write-only destination that keeps a digest, not the data."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def test_64_mib_stream_in_constant_memory(tmp_path: Path) -> None:
    size = 64 << 20
    block = os.urandom(100_003)  # allocated before tracing starts; reused for every block
    expected = hashlib.sha256()

    def source() -> Iterator[bytes]:
        left = size
        while left:
            piece = block if left >= len(block) else block[:left]
            expected.update(piece)
            left -= len(piece)
            yield piece

    target = tmp_path / "big.env"
    tracemalloc.start()
    try:
        with target.open("wb") as dst:
            envelope.seal_stream(source(), dst, [pk(ALICE), pk(BOB)], size, DESK)
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with target.open("rb") as src:
            header = envelope.inspect(src)
        sink = HashSink()
        with target.open("rb") as src:
            envelope.open_stream(src, sink, [BOB])  # type: ignore[arg-type]
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.padded_size == envelope.padded_size(size)
    assert target.stat().st_size == header.total_size
    assert sink.size == size
    assert sink.digest.digest() == expected.digest()
    assert seal_peak < 4 << 20, f"sealing peaked at {seal_peak} bytes of Python allocations"
    assert open_peak < 4 << 20, f"opening peaked at {open_peak} bytes of Python allocations"


# --- worked examples of docs/FORMAT.md ------------------------------------------------------------


def test_key_derivation_example() -> None:
    content_key = bytes(range(32))
    mac_key = "f83f562386e93163888cf23e833b02876b71f4e27525cccb0ff0bd248467f469"
    payload_key = "3f8cab018cd606de79916fd74ab1f281b51ff83feb634416ae8a84e3d17eaa4f"
    assert hkdf(content_key, envelope.HEADER_KEY_INFO).hex() == mac_key
    assert hkdf(content_key, envelope.PAYLOAD_KEY_INFO).hex() == payload_key
    # The module uses exactly these keys: its MAC verifies under mac_key, its chunk under
    # payload_key with nonce 0 || 0x01.
    env = envelope.seal(b"", [pk(ALICE)], DESK, rng=FixedRandom(content_key + os.urandom(32)))
    size = envelope.parse_header(env).header_size
    assert hmac.digest(bytes.fromhex(mac_key), env[: size - 32], "sha256") == env[size - 32 : size]
    plain = AESGCM(bytes.fromhex(payload_key)).decrypt(bytes(11) + b"\x01", env[size:], None)
    assert plain == bytes(CHUNK)


def test_fixed_header_example() -> None:
    env = seal_to(bytes(100_000), ALICE, BOB, CAROL, path=SealPath.BROWSER)
    assert env[:16].hex(" ") == "01 55 4e 52 50 01 03 10 00 00 00 00 00 01 88 00"


@pytest.mark.parametrize(
    ("content", "totals"),
    [
        (0, (65_696, 65_888, 67_136)),
        (65_529, (67_760, 67_952, 69_200)),
        (100_000, (100_528, 100_720, 101_968)),
        (1_048_576, (1_081_760, 1_081_952, 1_083_200)),
    ],
)
def test_total_length_table(content: int, totals: tuple[int, int, int]) -> None:
    for count, total in zip((1, 3, 16), totals, strict=True):
        padded_plain = envelope.padded_size(content)
        chunks = envelope.chunk_count(padded_plain)
        assert envelope.header_size(count) + padded_plain + 16 * chunks == total
    assert len(seal_to(bytes(content), ALICE)) == totals[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", NotAnEnvelope),
        (b"\x01", NotAnEnvelope),
        (b"\x07", NotAnEnvelope),
        (b"\x01U", TruncatedEnvelope),
        (b"\x01UN", TruncatedEnvelope),
        (b"\x07UN", TruncatedEnvelope),  # the version is not looked at before 16 bytes
        (b"\x01UNRP", TruncatedEnvelope),
        (b"\x01UNRP\x03\x01\x10" + bytes(7), TruncatedEnvelope),  # 15 bytes
        (b"\x01X", NotAnEnvelope),
        (b"\x01UNX", NotAnEnvelope),
        (b"%PDF-1.7\n", NotAnEnvelope),
    ],
)
def test_short_inputs(data: bytes, expected: type[EnvelopeError]) -> None:
    assert inspect_error(data) is expected
    assert fails(data, [ALICE]) is expected
