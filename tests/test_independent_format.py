"""Cross-check ``portal.envelope`` against an independent implementation of docs/FORMAT.md.

``tests/independent/format_v1.py`` was written from the specification alone. Here both are driven
side by side through the reference's public API only (seal, open_bytes, inspect, fingerprint,
key_id), as a black box: round trips in both directions, byte-identical output from fixed
randomness, and the same error category for every damaged input. Where the two disagree the test
is marked ``xfail(strict=True)`` with the finding as its reason, so the disagreement stays visible.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nacl.exceptions
import nacl.public
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from independent import format_v1 as ind
from nacl.bindings import (
    crypto_box_beforenm,
    crypto_box_seal,
    crypto_box_seal_open,
    crypto_scalarmult,
    crypto_secretbox,
)

from portal import envelope

VECTORS = Path(__file__).parent / "vectors" / "v1"
CATEGORIES = tuple(ind.ERROR_CLASSES)
OK = "ok"
P = (1 << 255) - 19


# --------------------------------------------------------------------------- helpers


def secret(label: str) -> bytes:
    return hashlib.sha256(b"independent format test key: " + label.encode()).digest()


def public(label: str) -> bytes:
    return ind.public_key_from_secret(secret(label))


LABELS = ("alice", "bob", "carol", "outsider")


def fixed_rng(seed: str, log: list[int] | None = None) -> Callable[[int], bytes]:
    """A deterministic n -> bytes source: SHAKE-256 of the seed, consumed in order."""
    stream = hashlib.shake_256(b"independent format test rng: " + seed.encode()).digest(4096)
    pos = 0

    def rng(n: int) -> bytes:
        nonlocal pos
        if log is not None:
            log.append(n)
        out = stream[pos : pos + n]
        pos += n
        assert len(out) == n
        return out

    return rng


def content(size: int) -> bytes:
    return hashlib.shake_256(b"independent format test content %d" % size).digest(size)


def category(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        if cls.__name__ in CATEGORIES:
            return cls.__name__
    return f"other:{type(exc).__module__}.{type(exc).__qualname__}"


def outcome(fn: Callable[[], object]) -> str:
    try:
        fn()
    except Exception as exc:
        return category(exc)
    return OK


def ref_open(env: bytes, labels: Sequence[str]) -> bytes:
    result: bytes = envelope.open_bytes(env, [nacl.public.PrivateKey(secret(x)) for x in labels])
    return result


def ind_open(env: bytes, labels: Sequence[str]) -> bytes:
    return ind.open(env, [secret(x) for x in labels])


def ref_inspect(env: bytes) -> dict[str, object]:
    h = envelope.inspect(io.BytesIO(env))
    return {
        "version": h.version,
        "path": int(h.path),
        "padded_size": h.padded_size,
        "key_ids": list(h.key_ids),
        "header_size": h.header_size,
        "chunk_count": h.chunk_count,
        "total_size": h.total_size,
    }


def ind_inspect(env: bytes) -> dict[str, object]:
    i = ind.inspect(env)
    return {k: i[k] for k in ("version", "path", "padded_size", "key_ids", "header_size")} | {
        "chunk_count": i["chunk_count"],
        "total_size": i["total_size"],
    }


def ref_seal(data: bytes, labels: Sequence[str], path: int, rng: Callable[[int], bytes]) -> bytes:
    result: bytes = envelope.seal(
        data, [public(x) for x in labels], envelope.SealPath(path), rng=rng
    )
    return result


def ind_seal(data: bytes, labels: Sequence[str], path: int, rng: Callable[[int], bytes]) -> bytes:
    return ind.seal(data, [public(x) for x in labels], path, rng)


def chunk_spans(env: bytes) -> list[tuple[int, int]]:
    """(start, end) of every sealed chunk, from the header as §3 and §8.2 describe."""
    n, p = env[6], int.from_bytes(env[8:16], "big")
    pos = ind.header_size(n)
    spans = []
    for i in range(ind.chunk_count(p)):
        size = min(ind.CHUNK_SIZE, p - ind.CHUNK_SIZE * i) + ind.TAG_SIZE
        spans.append((pos, pos + size))
        pos += size
    return spans


def flip(env: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(env)
    out[offset] ^= mask
    return bytes(out)


def put(env: bytes, offset: int, data: bytes) -> bytes:
    return env[:offset] + data + env[offset + len(data) :]


# --------------------------------------------------------------------------- spec examples


def test_spec_worked_examples() -> None:
    pk = bytes(range(32))
    assert ind.key_id(pk).hex() == "b5aa432521fb8387c22423ed5824e457"
    assert ind.fingerprint(pk) == "07713 03652 32164 93455 00737 92608 20822 55058"
    assert envelope.key_id(pk) == ind.key_id(pk)
    assert envelope.fingerprint(pk) == ind.fingerprint(pk)

    kh, kp = ind.derive_keys(bytes(range(32)))
    assert kh.hex() == "f83f562386e93163888cf23e833b02876b71f4e27525cccb0ff0bd248467f469"
    assert kp.hex() == "3f8cab018cd606de79916fd74ab1f281b51ff83feb634416ae8a84e3d17eaa4f"
    # §6: no salt, an empty salt and 32 zero bytes all give the same keys.
    for salt in (None, b"", bytes(32)):
        for info, want in ((ind.HEADER_MAC_INFO, kh), (ind.PAYLOAD_INFO, kp)):
            hk = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info)
            assert hk.derive(bytes(range(32))) == want

    # §8.1 worked example and table.
    assert ind.padded_size(100_000) == 100_352
    table = [
        (0, 65_536, 65_528, 1, 65_536),
        (65_528, 65_536, 0, 1, 65_536),
        (65_529, 67_584, 2_047, 2, 2_048),
        (100_000, 100_352, 344, 2, 34_816),
        (131_064, 131_072, 0, 2, 65_536),
        (131_065, 135_168, 4_095, 3, 4_096),
        (1_048_576, 1_081_344, 32_760, 17, 32_768),
        (10_485_760, 10_747_904, 262_136, 164, 65_536),
    ]
    for length, p, zeros, c, last in table:
        assert ind.padded_size(length) == p
        assert p - 8 - length == zeros
        assert ind.chunk_count(p) == c
        assert p - ind.CHUNK_SIZE * (c - 1) == last
    assert ind.padded_size(2**40 - 8) == 2**40
    assert ind.padded_size(2**40 - 7) > 2**40
    for x in range(0, 300_000, 997):
        assert ind.padme(ind.padme(x)) == ind.padme(x)

    # §8.3 table (header sizes and totals); the n = 16 column is checked by sealing too.
    assert [ind.header_size(n) for n in (1, 3, 16)] == [144, 336, 1_584]
    totals = {
        0: (65_696, 65_888, 67_136),
        65_529: (67_760, 67_952, 69_200),
        100_000: (100_528, 100_720, 101_968),
        1_048_576: (1_081_760, 1_081_952, 1_083_200),
    }
    for length, row in totals.items():
        assert tuple(ind.total_size(n, ind.padded_size(length)) for n in (1, 3, 16)) == row
    sixteen = [f"r{i}" for i in range(16)]
    env = ind_seal(b"", sixteen, 3, fixed_rng("sixteen"))
    assert len(env) == 67_136
    assert ref_open(env, ["r15"]) == b""
    assert ref_seal(b"", sixteen, 3, fixed_rng("sixteen")) == env

    # §4: the fixed header of a browser-sealed envelope to 3 recipients holding 100 000 bytes.
    want = bytes.fromhex("01554e5250010310000000000001 8800".replace(" ", ""))
    for seal in (ind_seal, ref_seal):
        env = seal(content(100_000), ["alice", "bob", "carol"], 1, fixed_rng("s4"))
        assert env[:16] == want


def test_manifest_example_fingerprint() -> None:
    """§13.1: the example entry's key (secret 00 .. 1f) and its fingerprint."""
    import base64

    pk = ind.public_key_from_secret(bytes(range(32)))
    assert base64.b64encode(pk).decode() == "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8="
    assert ind.fingerprint(pk) == "58381 08967 04804 22191 11517 46479 75118 36983"
    assert envelope.fingerprint(pk) == ind.fingerprint(pk)


def test_sealed_box_from_primitives_is_libsodium_crypto_box_seal() -> None:
    """§5: the 80 bytes built from X25519, BLAKE2b, HSalsa20 and secretbox are crypto_box_seal."""
    rng = fixed_rng("box")
    for label in LABELS:
        sk, pk = secret(label), public(label)
        k, esk = rng(32), rng(32)
        s = ind.x25519(sk, ind.x25519_base(esk))
        assert ind.hsalsa20(s, bytes(16)) == crypto_box_beforenm(ind.x25519_base(esk), sk)
        box = ind.seal_box(k, pk, esk)
        assert len(box) == 80
        assert crypto_box_seal_open(box, pk, sk) == k
        assert ind.open_box(crypto_box_seal(k, pk), sk, pk) == k


def test_fingerprints_and_key_ids_agree() -> None:
    rng = fixed_rng("fingerprints")
    keys = [rng(32) for _ in range(40)] + [bytes(32), b"\xff" * 32, bytes([9]) + bytes(31)]
    for pk in keys:
        fp = ind.fingerprint(pk)
        assert len(fp) == 47
        assert [len(g) for g in fp.split(" ")] == [5] * 8
        assert envelope.fingerprint(pk) == fp
        assert envelope.key_id(pk) == ind.key_id(pk)


# --------------------------------------------------------------------------- round trips

SIZES = [0, 1, 65_527, 65_528, 65_529, 65_536, 200_000, 1_048_576 + 3, 2**22 - 7]
RECIPIENT_SETS = {1: ["alice"], 3: ["alice", "bob", "carol"]}


@pytest.mark.parametrize("n", sorted(RECIPIENT_SETS))
@pytest.mark.parametrize("size", SIZES)
def test_cross_round_trip(size: int, n: int) -> None:
    labels = RECIPIENT_SETS[n]
    data = content(size)
    path = (1, 2, 3)[size % 3]

    mine = ind.seal(data, [public(x) for x in labels], path)
    theirs = envelope.seal(data, [public(x) for x in labels], envelope.SealPath(path))
    assert len(mine) == len(theirs) == ind.total_size(n, ind.padded_size(size))

    for label in labels:
        assert ref_open(mine, [label]) == data
        assert ind_open(theirs, [label]) == data
    assert ind_open(mine, [labels[-1]]) == data

    for env in (mine, theirs):
        info = ref_inspect(env)
        assert info == ind_inspect(env)
        assert info["version"] == 1
        assert info["path"] == path
        assert info["padded_size"] == ind.padded_size(size)
        assert info["key_ids"] == [envelope.key_id(public(x)) for x in labels]
        assert info["total_size"] == len(env)


@pytest.mark.parametrize("n", sorted(RECIPIENT_SETS))
@pytest.mark.parametrize("size", [0, 1, 65_528, 65_529, 200_000, 1_048_576 + 3])
def test_deterministic_seal_is_byte_identical(size: int, n: int) -> None:
    labels = RECIPIENT_SETS[n]
    data = content(size)
    seed = f"det {size} {n}"
    for path in (1, 2, 3):
        draws: list[int] = []
        theirs = ref_seal(data, labels, path, fixed_rng(seed, draws))
        mine = ind_seal(data, labels, path, fixed_rng(seed))
        assert mine == theirs
        # §10 step 2: K = rand(32), then one rand(32) per recipient, and nothing else.
        assert draws == [32] * (n + 1)


def test_stanza_order_is_the_callers_order() -> None:
    for order in (["carol", "alice", "bob"], ["bob", "carol", "alice"]):
        env = ref_seal(b"order", order, 3, fixed_rng("order"))
        assert ind.inspect(env)["key_ids"] == [ind.key_id(public(x)) for x in order]
        assert env == ind_seal(b"order", order, 3, fixed_rng("order"))


# --------------------------------------------------------------------------- seal refusals

LOW_ORDER_U = [
    0,
    1,
    P - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
]


def _le(u: int) -> bytes:
    return u.to_bytes(32, "little")


def _high_bit(key: bytes) -> bytes:
    return key[:31] + bytes([key[31] | 0x80])


def ref_reason(exc: BaseException) -> str:
    """Which §10 step 1.3 check the reference's InvalidRecipientKey reports, from its message."""
    assert type(exc).__name__ == "InvalidRecipientKey", repr(exc)
    text = str(exc)
    for needle, reason in (
        ("recipients", "count"),
        ("bytes", "length"),
        ("canonical form", "non-canonical"),
        ("low-order", "low-order"),
        ("twice", "duplicate"),
    ):
        if needle in text:
            return reason
    raise AssertionError(f"unrecognised reference message: {text}")


def _refusals(keys: list[bytes], path: int = 3) -> tuple[BaseException, BaseException]:
    """Seal with both implementations, which must refuse without drawing any randomness."""
    errors: list[BaseException] = []
    sealers: tuple[Callable[[Callable[[int], bytes]], bytes], ...] = (
        lambda rng: envelope.seal(b"x", keys, path, rng=rng),  # type: ignore[arg-type]
        lambda rng: ind.seal(b"x", keys, path, rng),
    )
    for seal in sealers:
        draws: list[int] = []
        with pytest.raises(ValueError) as info:
            seal(fixed_rng("refused", draws))
        assert draws == [], "randomness was drawn before the request was checked (§10 step 1)"
        errors.append(info.value)
    return errors[0], errors[1]


def _same_recipient_refusal(keys: list[bytes]) -> str:
    ref, mine = _refusals(keys)
    assert isinstance(ref, envelope.InvalidRecipientKey)
    assert isinstance(mine, ind.InvalidRecipientKey)
    assert ref_reason(ref) == mine.reason
    return mine.reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("none", "count"),
        ("seventeen", "count"),
        ("seventeen_bad", "count"),
        ("duplicate", "duplicate"),
        ("short", "length"),
        ("long", "length"),
        ("empty_key", "length"),
        *[(f"low_order_{i}", "low-order") for i in range(5)],
        ("duplicate_then_low_order", "low-order"),
        ("low_order_then_non_canonical", "low-order"),
        ("non_canonical_then_low_order", "non-canonical"),
        ("short_then_non_canonical", "length"),
    ],
)
def test_seal_refusals_agree(name: str, reason: str) -> None:
    """§10 step 1.3: count, then each key in order (length, canonical, low order), then distinct."""
    alice = public("alice")
    odd = _high_bit(alice)
    keys = {
        "none": [],
        "seventeen": [public(f"r{i}") for i in range(17)],
        "seventeen_bad": [alice[:31]] * 17,
        "duplicate": [alice, public("bob"), alice],
        "short": [alice[:31]],
        "long": [alice + b"\x00"],
        "empty_key": [b""],
        "duplicate_then_low_order": [alice, alice, _le(0)],
        "low_order_then_non_canonical": [_le(1), odd],
        "non_canonical_then_low_order": [odd, _le(1)],
        "short_then_non_canonical": [alice[:31], odd],
    }
    for i, u in enumerate(LOW_ORDER_U):
        keys[f"low_order_{i}"] = [alice, _le(u)]
    assert _same_recipient_refusal(keys[name]) == reason


NON_CANONICAL = {
    "alice_high_bit": lambda: _high_bit(public("alice")),
    "u_2^255-1": lambda: _le((1 << 255) - 1),
    "u_p_also_low_order": lambda: _le(P),  # u = p is u = 0 to X25519: canonical check comes first
    "u_p+1_also_low_order": lambda: _le(P + 1),
    "u_2^255_also_low_order": lambda: _le(1 << 255),
    "u_p+9_is_the_base_point": lambda: _le(P + 9),  # bit 255 clear, still not canonical
}


@pytest.mark.parametrize("which", sorted(NON_CANONICAL))
def test_seal_refuses_non_canonical_key(which: str) -> None:
    """§10 step 1.3 and §13.3: both sealers refuse a key that is not in canonical form."""
    key = NON_CANONICAL[which]()
    assert not ind.is_canonical(key)
    assert _same_recipient_refusal([key]) == "non-canonical"
    assert _same_recipient_refusal([public("bob"), key]) == "non-canonical"
    with pytest.raises(envelope.InvalidRecipientKey, match="canonical form"):
        envelope.check_public_key(key)
    with pytest.raises(envelope.InvalidRecipientKey, match="canonical form"):
        envelope.check_recipients([key])


def test_invalid_recipient_key_is_a_value_error_and_size_mismatch_is_not() -> None:
    """§11.1, the sealing errors."""
    assert issubclass(envelope.InvalidRecipientKey, ValueError)
    assert issubclass(envelope.InvalidRecipientKey, envelope.EnvelopeError)
    assert issubclass(envelope.SizeMismatch, envelope.EnvelopeError)
    assert not issubclass(envelope.SizeMismatch, ValueError)
    for declared, given in ((2, [b"abc"]), (2, [b"a"])):
        with pytest.raises(envelope.SizeMismatch):
            envelope.seal_stream(given, io.BytesIO(), [public("alice")], declared, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [0, 4, 7, 255, 256, -1])
def test_seal_refuses_unknown_path(path: int) -> None:
    """§10 step 1.1: the path is 1, 2 or 3, checked before the recipients and any randomness."""
    for keys in ([public("alice")], []):
        ref, mine = _refusals(keys, path)
        assert type(ref) is ValueError
        assert type(mine) is ind.SealRefused


def test_seal_has_no_default_path() -> None:
    """§10: the reference API requires the caller to pass the path."""
    with pytest.raises(TypeError):
        envelope.seal(b"x", [public("alice")])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        envelope.seal_stream([b"x"], io.BytesIO(), [public("alice")], 1)  # type: ignore[call-arg]


def test_non_canonical_recipient_makes_an_unopenable_envelope() -> None:
    """Why §10 refuses non-canonical keys: a sealer that skipped step 1 (seal_raw plays one)
    could seal to the high-bit-set encoding of alice's key; the key id is then not alice's, so
    alice gets NoMatchingKey from either opener (the content key is still wrapped to her point)."""
    alice = public("alice")
    odd = _high_bit(alice)
    assert ind.key_id(odd) != ind.key_id(alice)
    padded = (4).to_bytes(8, "big") + b"lost" + bytes(ind.PAD_FLOOR - 12)
    env = ind.seal_raw(padded, [odd], 3, fixed_rng("odd"))
    assert outcome(lambda: ref_open(env, ["alice"])) == "NoMatchingKey"
    assert outcome(lambda: ind_open(env, ["alice"])) == "NoMatchingKey"
    # The stanza is nonetheless a valid sealed box for alice's secret key and the odd encoding.
    assert crypto_box_seal_open(env[32:112], odd, secret("alice")) is not None


def test_zero_shared_secret_encodings() -> None:
    """§5: X25519 masks bit 255 and reduces mod p, so exactly 14 encodings give a zero output,
    5 of them canonical (§13.3). Both X25519s agree; both openers refuse each one as epk."""
    expected = {
        hi + u + add
        for u in LOW_ORDER_U
        for add in (0, P)
        for hi in (0, 1 << 255)
        if u + add < 1 << 255
    }
    assert len(expected) == 14
    assert sorted(x for x in expected if x < P) == sorted(LOW_ORDER_U)
    assert {P, P + 1, 1 << 255, (1 << 255) + 1} <= expected
    edges = {*range(40), *range(P - 40, (1 << 255) + 40), *range((1 << 256) - 40, 1 << 256)}
    for x in sorted(expected | edges):
        key = _le(x)
        try:
            crypto_scalarmult(b"\x07" * 32, key)
            libsodium_zero = False
        except nacl.exceptions.RuntimeError:
            libsodium_zero = True
        assert ind.is_low_order(key) == libsodium_zero == (x in expected), x
    alice = nacl.public.PrivateKey(secret("alice"))
    for x in expected:
        key = _le(x)
        with pytest.raises(envelope.InvalidRecipientKey):
            envelope.check_public_key(key)
        with pytest.raises(ind.InvalidRecipientKey):
            ind.check_public_key(key)
        # As an ephemeral key in a stanza: the zero output is caught, whatever the encoding.
        box = key + bytes(48)
        with pytest.raises(ind.AuthenticationFailed, match="zero"):
            ind.open_box(box, secret("alice"), public("alice"))
        with pytest.raises(nacl.exceptions.CryptoError):
            nacl.public.SealedBox(alice).decrypt(box)


def test_open_with_no_keys_is_no_matching_key() -> None:
    """§11.2 step 5: an empty list of secret keys gives NoMatchingKey."""
    env = base("one")
    assert outcome(lambda: ref_open(env, [])) == "NoMatchingKey"
    assert outcome(lambda: ind_open(env, [])) == "NoMatchingKey"


def test_inspect_result_fields_and_stream_argument() -> None:
    """§12: inspect takes a binary stream and returns version, path, padded_size, key_ids,
    header_size, chunk_count and total_size."""
    import dataclasses

    env = base("three")
    header = envelope.inspect(io.BytesIO(env))
    assert [f.name for f in dataclasses.fields(header)] == [
        "version",
        "path",
        "padded_size",
        "key_ids",
        "header_size",
    ]
    assert isinstance(header.path, envelope.SealPath)
    assert isinstance(header.key_ids, tuple)
    assert header.chunk_count == 2
    assert header.total_size == len(env) == 100_720
    assert ref_inspect(env) == ind_inspect(env)
    with pytest.raises(AttributeError):
        envelope.inspect(env)  # type: ignore[arg-type]
    stream = io.BytesIO(env)
    envelope.inspect(stream)
    assert stream.tell() == header.header_size


# --------------------------------------------------------------------------- damaged inputs


@cache
def base(name: str) -> bytes:
    """Valid envelopes sealed by the reference with fixed randomness."""
    specs = {
        "one": (0, ["alice"], 3),  # 65 696 bytes, 1 chunk
        "three": (100_000, ["alice", "bob", "carol"], 1),  # 2 chunks, the last 34 816
        "four": (200_000, ["alice"], 3),  # P = 200 704, 4 chunks, the last 4 096
        "three_other": (100_000, ["alice", "bob", "carol"], 1),  # same shape, new randomness
    }
    size, labels, path = specs[name]
    return ref_seal(content(size), labels, path, fixed_rng("base " + name))


@cache
def faulty(name: str) -> bytes:
    """Correctly authenticated envelopes whose plaintext or flags violate §8 (a faulty sealer)."""
    alice = [public("alice")]
    rng = fixed_rng("faulty " + name)

    def padded(length_field: int, p: int, body: bytes = b"") -> bytearray:
        out = bytearray(p)
        out[:8] = length_field.to_bytes(8, "big")
        out[8 : 8 + len(body)] = body
        return out

    if name == "control":  # a correct raw seal, to show the faulty ones differ only as stated
        return ind.seal_raw(padded(5, 65_536, b"hello"), alice, 3, rng)
    if name == "length_too_big":
        return ind.seal_raw(padded(65_529, 65_536), alice, 3, rng)
    if name == "length_2^40-8":
        return ind.seal_raw(padded(2**40 - 8, 65_536), alice, 3, rng)
    if name == "length_2^64-1":
        return ind.seal_raw(padded(2**64 - 1, 65_536), alice, 3, rng)
    if name == "length_too_small":  # P = 67 584 needs 65 529 <= L <= 67 576
        return ind.seal_raw(padded(10, 67_584), alice, 3, rng)
    if name == "length_too_small_then_truncated":
        env = ind.seal_raw(padded(10, 67_584), alice, 3, fixed_rng("faulty length_too_small"))
        return env[: chunk_spans(env)[0][1]]
    if name == "length_too_small_then_chunk1_damaged":
        env = ind.seal_raw(padded(10, 67_584), alice, 3, fixed_rng("faulty length_too_small"))
        return flip(env, chunk_spans(env)[1][0])
    if name == "padding_nonzero_chunk0_first":
        p = padded(100, 65_536, content(100))
        p[108] = 1
        return ind.seal_raw(p, alice, 3, rng)
    if name == "padding_nonzero_chunk0_last":
        p = padded(100, 65_536, content(100))
        p[-1] = 0x80
        return ind.seal_raw(p, alice, 3, rng)
    if name == "padding_nonzero_last_chunk":
        p = padded(65_529, 67_584, content(65_529))
        p[-1] = 1
        return ind.seal_raw(p, alice, 3, rng)
    if name == "empty_content_nonzero_padding":
        p = padded(0, 65_536)
        p[8] = 1
        return ind.seal_raw(p, alice, 3, rng)
    if name == "no_last_flag":
        return ind.seal_raw(padded(5, 65_536, b"hello"), alice, 3, rng, last_flags=[False])
    if name == "last_flag_on_chunk0_of_2":
        p = padded(65_529, 67_584, content(65_529))
        return ind.seal_raw(p, alice, 3, rng, last_flags=[True, True])
    if name == "last_flag_only_on_chunk0":
        p = padded(65_529, 67_584, content(65_529))
        return ind.seal_raw(p, alice, 3, rng, last_flags=[True, False])
    if name.startswith("padding_only_chunk"):
        # L = 2^22 - 7: P = 2^22 + 2^17, 66 chunks; chunk 64 holds the last content byte, chunk 65
        # is nothing but padding, so the zero-padding rule spans two chunks.
        length = 2**22 - 7
        p = padded(length, ind.padded_size(length), content(length))
        if name != "padding_only_chunk_valid":
            p[2**22 + 100] = 1  # in chunk 64, after the content
        env = ind.seal_raw(p, alice, 3, rng)
        if name == "padding_only_chunk_nonzero_then_last_damaged":
            env = flip(env, len(env) - 1)
        if name == "padding_only_chunk_last_nonzero":
            p = padded(length, ind.padded_size(length), content(length))
            p[-1] = 1
            env = ind.seal_raw(p, alice, 3, rng)
        return env
    if name == "huge_p_only_first_chunk":  # P = 2^40 declared and authenticated, 1 chunk sent
        p = padded(2**40 - 8, 65_536, content(65_528))
        return ind.seal_raw(p, alice, 3, rng, padded_size_field=2**40, last_flags=[False])
    if name == "header_p_invalid":
        return ind.seal_raw(padded(5, 65_536, b"hello"), alice, 3, rng, padded_size_field=65_537)
    if name == "duplicate_recipient":
        return ind.seal_raw(padded(5, 65_536, b"hello"), alice * 2, 3, rng)
    if name == "zero_recipients":
        return ind.seal_raw(padded(5, 65_536, b"hello"), [], 3, rng)
    raise KeyError(name)


ZERO_SECRET_EPK = {"u0": 0, "u1": 1, "up": P, "up+1": P + 1, "u2^255": 1 << 255}


@cache
def forged_alice_stanza(kind: str) -> bytes:
    """Alice's stanza replaced, the header MAC recomputed with the real content key (which any
    recipient, or the sealer, knows): either a box of another content key, or 80 bytes that do
    not open."""
    rng = fixed_rng("forged " + kind)
    k = rng(32)
    env = bytearray(ind_seal(b"forged", ["alice", "bob"], 3, fixed_rng("forged")))
    real_k = fixed_rng("forged")(32)
    assert ref_open(bytes(env), ["alice"]) == b"forged"
    if kind == "other_key":
        env[32:112] = ind.seal_box(rng(32), public("alice"), rng(32))
    elif kind.startswith("zero_secret_"):
        # The real content key, boxed under the key an all-zero shared secret would give: an
        # opener that skipped §5's "if s is 32 zero bytes, fail" would accept it. Also with
        # non-canonical encodings of the low-order points u = 0 and u = 1.
        epk = ZERO_SECRET_EPK[kind.removeprefix("zero_secret_")].to_bytes(32, "little")
        nonce = hashlib.blake2b(epk + public("alice"), digest_size=24).digest()
        env[32:112] = epk + crypto_secretbox(real_k, nonce, ind.hsalsa20(bytes(32), bytes(16)))
    else:
        env[32:112] = k + rng(48)
    kh, _ = ind.derive_keys(real_k)
    mac_at = 16 + 96 * 2
    env[mac_at : mac_at + 32] = hmac.new(kh, bytes(env[:mac_at]), hashlib.sha256).digest()
    return bytes(env)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    keys: tuple[str, ...]
    open_error: str  # the §11.2 outcome for opening with `keys`, or OK
    inspect_error: str  # the §12 outcome, or OK
    finding: str | None = None  # set when the reference disagrees (an xfail)


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(
        name: str,
        build: Callable[[], bytes],
        open_error: str,
        inspect_error: str,
        keys: tuple[str, ...] = ("alice",),
    ) -> None:
        cases.append(Case(name, build, keys, open_error, inspect_error))

    one = lambda: base("one")  # noqa: E731
    three = lambda: base("three")  # noqa: E731
    four = lambda: base("four")  # noqa: E731

    # Controls.
    add("valid_one", one, OK, OK)
    add("valid_three_bob", three, OK, OK, ("bob",))
    add("valid_four", four, OK, OK)

    # §11.2 step 1: short inputs.
    for m in range(16):
        want = "NotAnEnvelope" if m <= 1 else "TruncatedEnvelope"
        add(f"prefix_{m}", lambda m=m: base("one")[:m], want, want)
    short = {
        "short_07_55_4e": (bytes.fromhex("07554e"), "TruncatedEnvelope"),
        "short_00_55": (bytes.fromhex("0055"), "TruncatedEnvelope"),
        "short_01_58": (bytes.fromhex("0158"), "NotAnEnvelope"),
        "short_01_55_4e_58": (bytes.fromhex("01554e58"), "NotAnEnvelope"),
        "short_bad_magic_m6": (bytes.fromhex("01554e525103"), "NotAnEnvelope"),
        "short_version_7_m10": (bytes.fromhex("07554e52500301100000"), "TruncatedEnvelope"),
        "short_junk_after_magic_m15": (
            bytes.fromhex("01554e5250ffffffffffffffffffff"),
            "TruncatedEnvelope",
        ),
        "short_ascii": (b"hello, world", "NotAnEnvelope"),
        "single_magic_byte": (b"U", "NotAnEnvelope"),
        "missing_version_byte": (None, "NotAnEnvelope"),
    }
    for name, (data, want) in short.items():
        build = (lambda: base("one")[1:]) if data is None else (lambda d=data: d)
        add(name, build, want, want)

    # Step 2: the fixed header, in order.
    add("wrong_magic", lambda: put(base("one"), 1, b"UNRQ"), "NotAnEnvelope", "NotAnEnvelope")
    add(
        "wrong_magic_and_version",
        lambda: put(base("one"), 0, b"\x02UNRX"),
        "NotAnEnvelope",
        "NotAnEnvelope",
    )
    for v in (0, 2, 0xFF):
        add(
            f"version_{v}", lambda v=v: put(base("one"), 0, bytes([v])), *["UnsupportedVersion"] * 2
        )
    add(
        "version_2_and_every_field_bad",
        lambda: put(base("one"), 0, bytes.fromhex("02554e525000000fffffffffffffffff")),
        "UnsupportedVersion",
        "UnsupportedVersion",
    )
    for path in (0, 4, 0xFF):
        add(
            f"path_{path}",
            lambda v=path: put(base("one"), 5, bytes([v])),
            *["MalformedEnvelope"] * 2,
        )
    add("path_changed_3_to_1", lambda: put(base("one"), 5, b"\x01"), "AuthenticationFailed", OK)
    for e in (0, 15, 17):
        add(
            f"exponent_{e}", lambda v=e: put(base("one"), 7, bytes([v])), *["MalformedEnvelope"] * 2
        )
    for n in (0, 17, 0xFF):
        add(f"count_{n}", lambda v=n: put(base("one"), 6, bytes([v])), *["MalformedEnvelope"] * 2)
    add(
        "count_1_to_2",
        lambda: put(base("one"), 6, b"\x02"),
        "AuthenticationFailed",
        "TruncatedEnvelope",
    )
    add(
        "count_3_to_2",
        lambda: put(base("three"), 6, b"\x02"),
        "AuthenticationFailed",
        "MalformedEnvelope",
    )
    add(
        "count_3_to_2_carol",
        lambda: put(base("three"), 6, b"\x02"),
        "NoMatchingKey",
        "MalformedEnvelope",
        ("carol",),
    )
    bad_p = {
        "0": 0,
        "65535": 65_535,
        "65537": 65_537,
        "67583": 67_583,
        "2^40+1": 2**40 + 1,
        "2^40+2^35": 2**40 + 2**35,  # a Padme fixed point, but above the 2^40 limit
        "2^64-1": 2**64 - 1,
    }
    for name, p in bad_p.items():
        add(
            f"padded_size_{name}",
            lambda p=p: put(base("one"), 8, p.to_bytes(8, "big")),
            "MalformedEnvelope",
            "MalformedEnvelope",
        )
    for name, p in {"67584": 67_584, "2^40": 2**40}.items():
        build = lambda p=p: put(base("one"), 8, p.to_bytes(8, "big"))  # noqa: E731
        add(f"padded_size_{name}_alice", build, "AuthenticationFailed", "TruncatedEnvelope")
        add(
            f"padded_size_{name}_outsider",
            build,
            "NoMatchingKey",
            "TruncatedEnvelope",
            ("outsider",),
        )
    add(
        "padded_size_smaller_65536_on_2_chunks",
        lambda: put(base("three"), 8, (65_536).to_bytes(8, "big")),
        "AuthenticationFailed",
        "MalformedEnvelope",
    )
    add(
        "count_17_and_truncated",
        lambda: put(base("one"), 6, b"\x11")[:20],
        "MalformedEnvelope",
        "MalformedEnvelope",
    )
    add(
        "bad_p_and_exactly_16_bytes",
        lambda: put(base("one"), 8, (65_537).to_bytes(8, "big"))[:16],
        "MalformedEnvelope",
        "MalformedEnvelope",
    )

    # Step 3: the rest of the header.
    for cut in (16, 16 + 96, 16 + 96 * 3, 16 + 96 * 3 + 31):
        want = "TruncatedEnvelope"
        add(f"three_cut_at_{cut}", lambda c=cut: base("three")[:c], want, want, ("outsider",))

    # Step 4: duplicate key ids (before any key is tried).
    def dup() -> bytes:
        env = base("three")
        return put(env, 16 + 96 * 2, env[16 : 16 + 96])

    add("duplicate_stanza", dup, "MalformedEnvelope", "MalformedEnvelope", ("bob",))
    add("duplicate_stanza_outsider", dup, "MalformedEnvelope", "MalformedEnvelope", ("outsider",))
    add(
        "duplicate_key_id_only",
        lambda: put(base("three"), 16 + 96, base("three")[16:32]),
        "MalformedEnvelope",
        "MalformedEnvelope",
        ("carol",),
    )
    add("duplicate_and_cut_in_header", lambda: dup()[:300], *["TruncatedEnvelope"] * 2, ("bob",))
    add("duplicate_and_cut_after_header", lambda: dup()[:400], *["MalformedEnvelope"] * 2, ("bob",))

    # Step 5: finding a key.
    add("outsider", three, "NoMatchingKey", OK, ("outsider",))
    add("no_keys_at_all", three, "NoMatchingKey", OK, ())
    add("outsider_then_alice", three, OK, OK, ("outsider", "alice"))
    add(
        "outsider_truncated_payload",
        lambda: base("four")[:100_000],
        "NoMatchingKey",
        "TruncatedEnvelope",
        ("outsider",),
    )
    add(
        "outsider_trailing_bytes",
        lambda: base("one") + b"\x00",
        "NoMatchingKey",
        "MalformedEnvelope",
        ("outsider",),
    )
    alice_tag = 16 + 48
    damaged_alice = lambda: flip(base("three"), alice_tag)  # noqa: E731
    add("alice_stanza_tag_flipped", damaged_alice, "AuthenticationFailed", OK, ("alice", "bob"))
    add(
        "alice_stanza_tag_flipped_bob_first",
        damaged_alice,
        "AuthenticationFailed",  # the MAC covers alice's stanza too
        OK,
        ("bob", "alice"),
    )
    # A recipient-forged header (MAC correct for the real K): alice's stanza is the only bad
    # part, so the order of the caller's keys decides; no key is tried after a failing one.
    for kind in ("other_key", "garbage", *(f"zero_secret_{u}" for u in ZERO_SECRET_EPK)):
        build = lambda k=kind: forged_alice_stanza(k)  # noqa: E731
        add(f"forged_alice_{kind}_alice_bob", build, "AuthenticationFailed", OK, ("alice", "bob"))
        add(f"forged_alice_{kind}_bob_alice", build, OK, OK, ("bob", "alice"))
        add(f"forged_alice_{kind}_outsider_bob", build, OK, OK, ("outsider", "bob"))
    add("alice_stanza_ct_flipped", lambda: flip(base("three"), 16 + 95), "AuthenticationFailed", OK)
    add(
        "alice_stanza_epk_flipped", lambda: flip(base("three"), 16 + 16), "AuthenticationFailed", OK
    )
    add("alice_key_id_flipped", lambda: flip(base("three"), 16), "NoMatchingKey", OK)
    add(
        "alice_key_id_flipped_bob",
        lambda: flip(base("three"), 16),
        "AuthenticationFailed",
        OK,
        ("bob",),
    )
    low_epk = {"0": 0, "1": 1, "p-1": P - 1, "p": P, "p+1": P + 1, "2^255": 1 << 255}
    for label, u in low_epk.items():
        add(
            f"alice_epk_low_order_u{label}",
            lambda u=u: put(base("three"), 32, u.to_bytes(32, "little")),
            "AuthenticationFailed",
            OK,
        )
    add(
        "stanzas_0_1_swapped",
        lambda: put(base("three"), 16, base("three")[112:208] + base("three")[16:112]),
        "AuthenticationFailed",
        OK,
    )
    add(
        "bob_stanza_from_other_envelope",
        lambda: put(base("three"), 112, base("three_other")[112:208]),
        "AuthenticationFailed",
        OK,
        ("bob",),
    )
    add(
        "header_from_other_envelope",
        lambda: base("three_other")[:336] + base("three")[336:],
        "AuthenticationFailed",
        OK,
    )
    for off in (0, 31):
        add(
            f"mac_byte_{off}_flipped",
            lambda o=off: flip(base("one"), 112 + o),
            "AuthenticationFailed",
            OK,
        )

    # Step 6: chunks, in stream order.
    for i in range(4):
        for where in ("first", "tag_last"):

            def chunk_flip(i: int = i, where: str = where) -> bytes:
                start, end = chunk_spans(base("four"))[i]
                return flip(base("four"), start if where == "first" else end - 1)

            add(f"chunk_{i}_{where}_byte_flipped", chunk_flip, "AuthenticationFailed", OK)

    def swapped(a: int, b: int) -> bytes:
        env = base("four")
        s = chunk_spans(env)
        ca, cb = env[s[a][0] : s[a][1]], env[s[b][0] : s[b][1]]
        return put(put(env, s[a][0], cb), s[b][0], ca)

    add("chunks_0_1_swapped", lambda: swapped(0, 1), "AuthenticationFailed", OK)
    add("chunks_1_2_swapped", lambda: swapped(1, 2), "AuthenticationFailed", OK)

    def reorder_last_first() -> bytes:
        env = base("four")
        s = chunk_spans(env)
        chunks = [env[a:b] for a, b in s]
        return env[: s[0][0]] + chunks[3] + chunks[0] + chunks[1] + chunks[2]

    add("last_chunk_moved_first", reorder_last_first, "AuthenticationFailed", OK)

    def drop(i: int) -> bytes:
        env = base("four")
        a, b = chunk_spans(env)[i]
        return env[:a] + env[b:]

    add("chunk_1_dropped", lambda: drop(1), "AuthenticationFailed", "TruncatedEnvelope")
    add("last_chunk_dropped", lambda: drop(3), "TruncatedEnvelope", "TruncatedEnvelope")

    def dup_chunk() -> bytes:
        env = base("four")
        a, b = chunk_spans(env)[1]
        return env[:b] + env[a:b] + env[b:]

    add("chunk_1_duplicated", dup_chunk, "AuthenticationFailed", "MalformedEnvelope")
    add(
        "last_chunk_from_other_envelope",
        lambda: (
            base("three")[: chunk_spans(base("three"))[1][0]]
            + base("three_other")[chunk_spans(base("three"))[1][0] :]
        ),
        "AuthenticationFailed",
        OK,
    )
    for k in range(4):
        add(
            f"four_cut_at_chunk_boundary_{k}",
            lambda k=k: base("four")[: chunk_spans(base("four"))[k][0]],
            "TruncatedEnvelope",
            "TruncatedEnvelope",
        )
    add("four_cut_one_byte_short", lambda: base("four")[:-1], *["TruncatedEnvelope"] * 2)
    add("four_cut_mid_last_tag", lambda: base("four")[:-8], *["TruncatedEnvelope"] * 2)
    add(
        "chunk_1_damaged_and_truncated_later",
        lambda: flip(base("four"), chunk_spans(base("four"))[1][0])[:-1],
        "AuthenticationFailed",
        "TruncatedEnvelope",
    )
    add(
        "chunk_2_damaged_and_trailing_bytes",
        lambda: flip(base("four"), chunk_spans(base("four"))[2][0] + 5) + b"\x00",
        "AuthenticationFailed",
        "MalformedEnvelope",
    )

    # Step 7: trailing bytes.
    for name, extra in {"1_zero": b"\x00", "16_bytes": bytes(16), "ascii": b"trailer"}.items():
        add(f"trailing_{name}", lambda x=extra: base("four") + x, *["MalformedEnvelope"] * 2)
    add("trailing_whole_chunk", lambda: base("one") + base("one")[144:], *["MalformedEnvelope"] * 2)
    add(
        "two_envelopes_concatenated",
        lambda: base("one") + base("one"),
        "MalformedEnvelope",
        "MalformedEnvelope",
    )

    # A faulty sealer: authenticated, but the plaintext breaks §8.1 or the flags break §8.2.
    faulty_cases = {
        "control": (OK, OK),
        "length_too_big": ("MalformedEnvelope", OK),
        "length_2^40-8": ("MalformedEnvelope", OK),
        "length_2^64-1": ("MalformedEnvelope", OK),
        "length_too_small": ("MalformedEnvelope", OK),
        "length_too_small_then_truncated": ("MalformedEnvelope", "TruncatedEnvelope"),
        "length_too_small_then_chunk1_damaged": ("MalformedEnvelope", OK),
        "padding_nonzero_chunk0_first": ("MalformedEnvelope", OK),
        "padding_nonzero_chunk0_last": ("MalformedEnvelope", OK),
        "padding_nonzero_last_chunk": ("MalformedEnvelope", OK),
        "empty_content_nonzero_padding": ("MalformedEnvelope", OK),
        "no_last_flag": ("AuthenticationFailed", OK),
        "last_flag_on_chunk0_of_2": ("AuthenticationFailed", OK),
        "last_flag_only_on_chunk0": ("AuthenticationFailed", OK),
        "padding_only_chunk_valid": (OK, OK),
        "padding_only_chunk_nonzero": ("MalformedEnvelope", OK),
        "padding_only_chunk_nonzero_then_last_damaged": ("MalformedEnvelope", OK),
        "padding_only_chunk_last_nonzero": ("MalformedEnvelope", OK),
        "huge_p_only_first_chunk": ("TruncatedEnvelope", "TruncatedEnvelope"),
        "header_p_invalid": ("MalformedEnvelope", "MalformedEnvelope"),
        "duplicate_recipient": ("MalformedEnvelope", "MalformedEnvelope"),
        "zero_recipients": ("MalformedEnvelope", "MalformedEnvelope"),
    }
    for name, (op, ins) in faulty_cases.items():
        add(f"faulty_sealer_{name}", lambda n=name: faulty(n), op, ins)
    return cases


CASES = _cases()


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.finding)] if case.finding else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_damaged_input_same_category(case: Case) -> None:
    env = case.build()
    got = {
        "ref_open": outcome(lambda: ref_open(env, case.keys)),
        "ind_open": outcome(lambda: ind_open(env, case.keys)),
        "ref_inspect": outcome(lambda: ref_inspect(env)),
        "ind_inspect": outcome(lambda: ind_inspect(env)),
    }
    want = {
        "ref_open": case.open_error,
        "ind_open": case.open_error,
        "ref_inspect": case.inspect_error,
        "ind_inspect": case.inspect_error,
    }
    assert got == want


def test_faulty_sealer_control_matches_a_normal_seal() -> None:
    """The raw sealer used for the faulty cases is the normal one when given a valid input."""
    env = faulty("control")
    assert ref_open(env, ["alice"]) == b"hello"
    assert env == ind.seal(b"hello", [public("alice")], 3, fixed_rng("faulty control"))


def test_every_header_byte_flip_agrees() -> None:
    env = base("three")
    disagreements = []
    for off in range(ind.header_size(3)):
        for mask in (0x01, 0x80):
            bad = flip(env, off, mask)
            pair = [
                (
                    outcome(lambda b=bad: ref_open(b, ["alice"])),
                    outcome(lambda b=bad: ind_open(b, ["alice"])),
                ),
                (outcome(lambda b=bad: ref_inspect(b)), outcome(lambda b=bad: ind_inspect(b))),
            ]
            if any(r != i for r, i in pair) or pair[0][0] == OK:
                disagreements.append((off, mask, pair))
    assert disagreements == []


def test_payload_byte_flips_agree() -> None:
    env = base("four")
    h = ind.header_size(1)
    for off in [*range(h, len(env), 4099), len(env) - 1]:
        bad = flip(env, off)
        assert outcome(lambda b=bad: ref_open(b, ["alice"])) == "AuthenticationFailed"
        assert outcome(lambda b=bad: ind_open(b, ["alice"])) == "AuthenticationFailed"


def test_truncation_at_many_lengths_agrees() -> None:
    env = base("three")
    spans = chunk_spans(env)
    lengths = set(range(0, 400)) | {len(env) - k for k in range(1, 20)}
    for a, b in spans:
        lengths |= {a - 1, a, a + 1, b - 1}
    for m in sorted(x for x in lengths if 0 <= x < len(env)):
        cut = env[:m]
        for keys in (["alice"], ["outsider"]):
            r = outcome(lambda c=cut, k=keys: ref_open(c, k))
            i = outcome(lambda c=cut, k=keys: ind_open(c, k))
            assert r == i, (m, keys)
            assert r != OK
        assert outcome(lambda c=cut: ref_inspect(c)) == outcome(lambda c=cut: ind_inspect(c)), m


# --------------------------------------------------------------------------- test vectors


@cache
def vectors() -> dict[str, object]:
    path = VECTORS / "vectors.json"
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


@cache
def invalid_vectors() -> list[dict[str, object]]:
    path = VECTORS / "invalid.json"
    data: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))["vectors"]
    return data


def _plaintext(case: dict[str, object]) -> bytes:
    if "plaintext_hex" in case:
        return bytes.fromhex(str(case["plaintext_hex"]))
    return (VECTORS / str(case["plaintext_file"])).read_bytes()


def test_vectors_constants_and_tables() -> None:
    v = vectors()
    c = v["constants"]
    assert isinstance(c, dict)
    assert c["version"] == ind.VERSION
    assert bytes.fromhex(c["magic_hex"]) == ind.MAGIC
    assert c["chunk_size"] == ind.CHUNK_SIZE
    assert c["tag_size"] == ind.TAG_SIZE
    assert c["stanza_size"] == ind.STANZA_SIZE
    assert c["mac_size"] == ind.MAC_SIZE
    assert c["fixed_header_size"] == ind.FIXED_HEADER_SIZE
    assert c["length_prefix_size"] == ind.LENGTH_PREFIX_SIZE
    assert c["pad_floor"] == ind.PAD_FLOOR
    assert c["max_recipients"] == ind.MAX_RECIPIENTS
    assert c["paths"] == {name: code for code, name in ind.PATHS.items()}
    assert c["fingerprint_domain"].encode() == ind.FINGERPRINT_DOMAIN
    assert c["header_mac_info"].encode() == ind.HEADER_MAC_INFO
    assert c["payload_key_info"].encode() == ind.PAYLOAD_INFO
    for fp in v["fingerprints"]:  # type: ignore[attr-defined]
        pk = bytes.fromhex(fp["public_key_hex"])
        assert ind.key_id(pk).hex() == fp["key_id_hex"]
        assert ind.fingerprint(pk) == fp["fingerprint"]
    for row in v["padme"]:  # type: ignore[attr-defined]
        assert ind.padme(int(row["length"])) == int(row["padme"])
    for row in v["padded_sizes"]:  # type: ignore[attr-defined]
        p = ind.padded_size(int(row["content_size"]))
        assert p == int(row["padded_size"])
        assert ind.chunk_count(p) == int(row["chunk_count"])


def _valid_case_names() -> list[str]:
    path = VECTORS / "vectors.json"
    if not path.exists():
        return ["(no vectors.json)"]
    return [c["name"] for c in json.loads(path.read_text(encoding="utf-8"))["cases"]]


@pytest.mark.parametrize("name", _valid_case_names())
def test_valid_vector(name: str) -> None:
    cases = {c["name"]: c for c in vectors()["cases"]}  # type: ignore[attr-defined]
    case = cases[name]
    env = (VECTORS / case["envelope_file"]).read_bytes()
    data = _plaintext(case)
    assert len(env) == int(case["envelope_size"])
    assert hashlib.sha256(env).hexdigest() == case["envelope_sha256"]
    assert hashlib.sha256(data).hexdigest() == case["plaintext_sha256"]

    randomness = bytes.fromhex(case["randomness_hex"])
    recipients = case["recipients"]
    assert len(randomness) == 32 * (len(recipients) + 1)
    assert randomness[:32].hex() == case["content_key_hex"]
    kh, kp = ind.derive_keys(randomness[:32])
    assert (kh.hex(), kp.hex()) == (case["header_mac_key_hex"], case["payload_key_hex"])

    pks = [bytes.fromhex(r["public_key_hex"]) for r in recipients]
    pos = 0

    def rng(n: int) -> bytes:
        nonlocal pos
        pos += n
        return randomness[pos - n : pos]

    assert ind.seal(data, pks, int(case["path_code"]), rng) == env
    assert pos == len(randomness)

    info = ind.inspect(env)
    assert info["path"] == int(case["path_code"])
    assert ind.PATHS[info["path"]] == case["path"]
    assert info["padded_size"] == int(case["padded_size"])
    assert info["chunk_count"] == int(case["chunk_count"])
    assert info["header_size"] == int(case["header_size"])
    assert info["header"].hex() == case["header_hex"]
    for i, r in enumerate(recipients):
        sk = bytes.fromhex(r["secret_key_hex"])
        pk = bytes.fromhex(r["public_key_hex"])
        esk = randomness[32 * (i + 1) : 32 * (i + 2)]
        assert ind.public_key_from_secret(sk) == pk
        assert esk.hex() == r["ephemeral_secret_hex"]
        assert ind.x25519_base(esk).hex() == r["ephemeral_public_hex"]
        assert ind.key_id(pk).hex() == r["key_id_hex"]
        assert ind.fingerprint(pk) == r["fingerprint"]
        assert info["stanzas"][i].hex() == r["stanza_hex"]
        assert ind.open(env, sk) == data


def _invalid_names() -> list[str]:
    path = VECTORS / "invalid.json"
    if not path.exists():
        return ["(no invalid.json)"]
    return [v["name"] for v in json.loads(path.read_text(encoding="utf-8"))["vectors"]]


@pytest.mark.parametrize("name", _invalid_names())
def test_invalid_vector(name: str) -> None:
    vec = {v["name"]: v for v in invalid_vectors()}[name]
    env = (VECTORS / str(vec["envelope_file"])).read_bytes()
    assert len(env) == int(str(vec["envelope_size"]))
    assert hashlib.sha256(env).hexdigest() == vec["envelope_sha256"]
    sk = bytes.fromhex(vec["open_with"]["secret_key_hex"])  # type: ignore[index]
    inspected = outcome(lambda: ind.inspect(env))
    if vec["expected_by"] == "inspect":
        assert inspected == vec["expected_error"]
    else:
        assert vec["expected_by"] == "open"
        assert inspected == OK
    assert outcome(lambda: ind.open(env, sk)) == vec["open_error"]
    # And the black box agrees with its own vectors.
    assert (
        outcome(lambda: envelope.open_bytes(env, [nacl.public.PrivateKey(sk)])) == vec["open_error"]
    )
