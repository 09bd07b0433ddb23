"""The known-answer vectors in tests/vectors/v1/: reproduce, open, inspect, refuse.

Besides checking ``portal.envelope`` against the stored bytes, ``TestReference``
re-derives every case from the format's primitives alone (struct, HKDF, HMAC,
PyNaCl's SealedBox, AES-GCM), so the vectors and the module are both checked
against the specification rather than only against each other.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import io
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl import bindings
from nacl.public import PrivateKey, SealedBox

from portal import attachment, envelope, report

VECTORS = Path(__file__).parent / "vectors"
V1 = VECTORS / "v1"
DOCUMENT: dict[str, Any] = json.loads((V1 / "vectors.json").read_text(encoding="utf-8"))
INVALID: list[dict[str, Any]] = json.loads((V1 / "invalid.json").read_text(encoding="utf-8"))[
    "vectors"
]
CASES: list[dict[str, Any]] = DOCUMENT["cases"]
BY_NAME = {case["name"]: case for case in CASES}


class FixedRandom:
    """Hands out the vector's randomness in order and records how much was used."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.used = 0

    def __call__(self, n: int) -> bytes:
        assert self.used + n <= len(self.data), "the sealer drew more randomness than fixed"
        out = self.data[self.used : self.used + n]
        self.used += n
        return out


def plaintext(case: dict[str, Any]) -> bytes:
    if "plaintext_hex" in case:
        return bytes.fromhex(case["plaintext_hex"])
    return (V1 / case["plaintext_file"]).read_bytes()


def envelope_bytes(entry: dict[str, Any]) -> bytes:
    data = (V1 / entry["envelope_file"]).read_bytes()
    assert len(data) == entry["envelope_size"]
    assert hashlib.sha256(data).hexdigest() == entry["envelope_sha256"]
    return data


def public_keys(case: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(r["public_key_hex"]) for r in case["recipients"]]


def by_name(items: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("entry", items, ids=[item["name"] for item in items])


# --- the stored files are what the generator makes ----------------------------------------------


def test_generator_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_check_notices_changed_missing_and_stale_files(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("vectors_generate", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "vectors_generate", generate)  # dataclasses look it up
    spec.loader.exec_module(generate)
    files = generate.build()
    assert generate.differences(files, generate.on_disk()) == []
    altered = dict(files)
    altered["empty.env"] = files["empty.env"][:-1] + bytes([files["empty.env"][-1] ^ 1])
    del altered["many_chunks.bin"]
    altered["leftover.env"] = b""
    assert generate.differences(files, altered) == [
        "missing: many_chunks.bin",
        "not generated (stale): leftover.env",
        "differs: empty.env",
    ]


def test_vector_data_stays_small() -> None:
    total = sum(p.stat().st_size for p in V1.rglob("*") if p.is_file())
    assert total < 2_300_000


def test_cases_cover_what_the_brief_asks_for() -> None:
    sizes = {case["plaintext_size"] for case in CASES}
    assert {0, 1, 65536 - 8, 2 * 65536 - 8} <= sizes
    assert any(case["chunk_count"] >= 4 for case in CASES)
    assert {case["path"] for case in CASES} == {"browser", "server", "desk"}
    assert {len(case["recipients"]) for case in CASES} >= {1, 2, 3}
    text = plaintext(BY_NAME["three_recipients_text_browser_path"]).decode("utf-8")
    assert any("\u0400" <= c <= "\u04ff" for c in text)  # Cyrillic
    assert any("\u0600" <= c <= "\u06ff" for c in text)  # Arabic
    assert "é" in text


def test_invalid_vectors_cover_every_error_class_and_both_stages() -> None:
    names = {item["name"] for item in INVALID}
    assert len(names) == len(INVALID)
    assert {item["expected_error"] for item in INVALID} == {
        "NotAnEnvelope",
        "UnsupportedVersion",
        "MalformedEnvelope",
        "TruncatedEnvelope",
        "NoMatchingKey",
        "AuthenticationFailed",
    }
    assert {item["expected_by"] for item in INVALID} == {"inspect", "open"}
    for item in INVALID:
        assert item["base"] in BY_NAME


# --- valid vectors ------------------------------------------------------------------------------


@by_name(CASES)
def test_seal_reproduces_the_envelope(entry: dict[str, Any]) -> None:
    expected = envelope_bytes(entry)
    content = plaintext(entry)
    assert hashlib.sha256(content).hexdigest() == entry["plaintext_sha256"]
    assert len(content) == entry["plaintext_size"]
    randomness = bytes.fromhex(entry["randomness_hex"])
    path = envelope.SealPath(entry["path_code"])

    rng = FixedRandom(randomness)
    out = io.BytesIO()
    header = envelope.seal_stream(
        io.BytesIO(content), out, public_keys(entry), len(content), path, rng=rng
    )
    assert rng.used == len(randomness)
    assert out.getvalue() == expected
    assert header.padded_size == entry["padded_size"]

    # The in-memory helper and a stream of odd-sized blocks give the same bytes.
    assert envelope.seal(content, public_keys(entry), path, rng=FixedRandom(randomness)) == expected
    blocks = [content[i : i + 7919] for i in range(0, len(content), 7919)]
    out = io.BytesIO()
    envelope.seal_stream(
        iter(blocks), out, public_keys(entry), len(content), path, rng=FixedRandom(randomness)
    )
    assert out.getvalue() == expected


@by_name(CASES)
def test_every_recipient_opens_the_envelope(entry: dict[str, Any]) -> None:
    data = envelope_bytes(entry)
    content = plaintext(entry)
    for recipient in entry["recipients"]:
        identity = PrivateKey(bytes.fromhex(recipient["secret_key_hex"]))
        assert envelope.open_bytes(data, [identity]) == content
        out = io.BytesIO()
        header = envelope.open_stream(io.BytesIO(data), out, [identity])
        assert out.getvalue() == content
        assert header.path.name.lower() == entry["path"]


@by_name(CASES)
def test_inspect_reports_the_header(entry: dict[str, Any]) -> None:
    data = envelope_bytes(entry)
    header = envelope.inspect(io.BytesIO(data))
    assert header.version == 1
    assert header.padded_size == entry["padded_size"]
    assert header.chunk_count == entry["chunk_count"]
    assert header.header_size == entry["header_size"]
    assert header.total_size == len(data)
    assert int(header.path) == entry["path_code"]
    assert [k.hex() for k in header.key_ids] == [r["key_id_hex"] for r in entry["recipients"]]
    assert envelope.padded_size(entry["plaintext_size"]) == entry["padded_size"]
    _, raw = envelope.read_header(io.BytesIO(data))
    assert raw.hex() == entry["header_hex"]


@by_name(CASES)
def test_recipient_fields_follow_from_the_secret_key(entry: dict[str, Any]) -> None:
    for recipient in entry["recipients"]:
        pk = bytes(PrivateKey(bytes.fromhex(recipient["secret_key_hex"])).public_key)
        assert pk.hex() == recipient["public_key_hex"]
        assert envelope.key_id(pk).hex() == recipient["key_id_hex"]
        assert envelope.fingerprint(pk) == recipient["fingerprint"]


def test_fingerprint_known_answers() -> None:
    assert len(DOCUMENT["fingerprints"]) >= 3
    for item in DOCUMENT["fingerprints"]:
        pk = bytes.fromhex(item["public_key_hex"])
        assert envelope.fingerprint(pk) == item["fingerprint"]
        assert envelope.key_id(pk).hex() == item["key_id_hex"]


def test_padme_known_answers() -> None:
    for item in DOCUMENT["padme"]:
        assert envelope.padme(item["length"]) == item["padme"]
    for item in DOCUMENT["padded_sizes"]:
        assert envelope.padded_size(item["content_size"]) == item["padded_size"]
        assert envelope.chunk_count(item["padded_size"]) == item["chunk_count"]


def test_constants_match_the_module() -> None:
    c = DOCUMENT["constants"]
    assert bytes.fromhex(c["magic_hex"]) == envelope.MAGIC
    assert c["header_mac_info"].encode() == envelope.HEADER_KEY_INFO
    assert c["payload_key_info"].encode() == envelope.PAYLOAD_KEY_INFO
    assert c["fingerprint_domain"].encode() == envelope.FINGERPRINT_DOMAIN
    assert c["paths"] == {p.name.lower(): int(p) for p in envelope.SealPath}
    assert (c["chunk_size"], c["stanza_size"], c["max_recipients"]) == (65536, 96, 16)


# --- an independent reading of the format -------------------------------------------------------


def _hkdf(key: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(key)


class TestReference:
    """Decode each vector from the primitives alone, as docs/FORMAT.md describes it."""

    @by_name(CASES)
    def test_header_layout_and_mac(self, entry: dict[str, Any]) -> None:
        data = envelope_bytes(entry)
        content_key = bytes.fromhex(entry["content_key_hex"])
        assert bytes.fromhex(entry["randomness_hex"]).startswith(content_key)
        mac_key = _hkdf(content_key, "reprisals-portal/v1 header-mac")
        assert mac_key.hex() == entry["header_mac_key_hex"]
        assert _hkdf(content_key, "reprisals-portal/v1 payload").hex() == entry["payload_key_hex"]

        version, magic, path, count, exponent, padded = struct.unpack(">B4sBBBQ", data[:16])
        assert (version, magic, exponent) == (1, b"UNRP", 16)
        assert (path, count, padded) == (
            entry["path_code"],
            len(entry["recipients"]),
            entry["padded_size"],
        )
        size = 16 + 96 * count + 32
        assert size == entry["header_size"]
        mac = hmac.digest(bytes.fromhex(entry["header_mac_key_hex"]), data[: size - 32], "sha256")
        assert mac == data[size - 32 : size]

        randomness = bytes.fromhex(entry["randomness_hex"])
        assert len(randomness) == 32 * (1 + count)
        for i, recipient in enumerate(entry["recipients"]):
            stanza = data[16 + 96 * i : 16 + 96 * (i + 1)]
            assert stanza.hex() == recipient["stanza_hex"]
            pk = bytes.fromhex(recipient["public_key_hex"])
            digest = hashlib.sha512(b"reprisals-portal key fingerprint v1" + pk).digest()
            assert stanza[:16] == digest[:16]
            esk = bytes.fromhex(recipient["ephemeral_secret_hex"])
            assert randomness[32 * (i + 1) : 32 * (i + 2)] == esk
            assert stanza[16:48] == bindings.crypto_scalarmult_base(esk)
            assert stanza[16:48].hex() == recipient["ephemeral_public_hex"]
            # libsodium's crypto_box_seal_open, through PyNaCl, recovers the content key.
            sk = PrivateKey(bytes.fromhex(recipient["secret_key_hex"]))
            assert SealedBox(sk).decrypt(stanza[16:]) == content_key

    @by_name(CASES)
    def test_payload_stream(self, entry: dict[str, Any]) -> None:
        data = envelope_bytes(entry)
        aead = AESGCM(bytes.fromhex(entry["payload_key_hex"]))
        padded, count = entry["padded_size"], entry["chunk_count"]
        assert count == -(-padded // 65536)
        body = memoryview(data)[entry["header_size"] :]
        assert len(body) == padded + 16 * count
        plain = bytearray()
        for i in range(count):
            piece = body[i * 65552 : (i + 1) * 65552]
            nonce = i.to_bytes(11, "big") + (b"\x01" if i == count - 1 else b"\x00")
            plain += aead.decrypt(nonce, bytes(piece), None)
        assert len(plain) == padded
        size = int.from_bytes(plain[:8], "big")
        assert size == entry["plaintext_size"]
        assert plain[8 : 8 + size] == plaintext(entry)
        assert plain[8 + size :] == bytes(padded - 8 - size)


# --- invalid vectors ----------------------------------------------------------------------------


@by_name(INVALID)
def test_invalid_vector_is_refused_at_the_expected_stage(entry: dict[str, Any]) -> None:
    data = envelope_bytes(entry)
    expected = getattr(envelope, entry["expected_error"])
    opening = getattr(envelope, entry["open_error"])
    assert issubclass(expected, envelope.EnvelopeError)
    identity = PrivateKey(bytes.fromhex(entry["open_with"]["secret_key_hex"]))

    if entry["expected_by"] == "inspect":
        with pytest.raises(envelope.EnvelopeError) as caught:
            envelope.inspect(io.BytesIO(data))
        assert type(caught.value) is expected
        assert caught.value.hint
    else:
        assert entry["open_error"] == entry["expected_error"]
        header = envelope.inspect(io.BytesIO(data))  # the structure alone looks fine
        assert header.total_size == len(data)

    with pytest.raises(envelope.EnvelopeError) as caught:
        envelope.open_bytes(data, [identity])
    assert type(caught.value) is opening
    out = io.BytesIO()
    with pytest.raises(opening):
        envelope.open_stream(io.BytesIO(data), out, [identity])


@by_name(INVALID)
def test_invalid_vector_differs_from_its_base_as_described(entry: dict[str, Any]) -> None:
    data = envelope_bytes(entry)
    base = envelope_bytes(BY_NAME[entry["base"]])
    if entry["name"] == "wrong_key":
        assert data == base
        keys = {r["secret_key_hex"] for r in BY_NAME[entry["base"]]["recipients"]}
        assert entry["open_with"]["secret_key_hex"] not in keys
    else:
        assert data != base
    if entry["name"].startswith("truncated") or entry["name"] == "last_chunk_dropped":
        assert base.startswith(data)


# --- attachments (FORMAT.md §15.6) ---------------------------------------------------------

ATTACHMENTS: dict[str, Any] = json.loads((V1 / "attachments.json").read_text(encoding="utf-8"))


def content_from_parts(entry: dict[str, Any]) -> bytes:
    """The content rebuilt from the record as the format describes it, without the encoder."""
    data = bytes.fromhex(entry["file_hex"])
    meta = entry["metadata_json"].encode("utf-8")
    return b"UNRPFILE" + struct.pack(">Q", len(data)) + data + meta


@by_name(ATTACHMENTS["valid"])
def test_attachment_vector_is_reproduced_and_read_back(entry: dict[str, Any]) -> None:
    data = bytes.fromhex(entry["file_hex"])
    expected = content_from_parts(entry)
    assert len(expected) == entry["content_length"] == 16 + len(data) + entry["metadata_size"]
    assert hashlib.sha256(expected).hexdigest() == entry["content_sha256"]
    meta = json.loads(entry["metadata_json"])
    assert entry["metadata_json"] == json.dumps(
        meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() == entry["file_sha256"]
    assert (meta["name"], meta["media_type"]) == (entry["recorded_name"], entry["media_type"])
    encoder = attachment.Encoder(
        io.BytesIO(data),
        len(data),
        name=entry["given_name"],
        media_type=entry["given_media_type"],
        file_id=entry["id"],
    )
    assert encoder.length == len(expected)
    assert b"".join(encoder) == expected
    out = io.BytesIO()
    read = attachment.decode(io.BytesIO(expected), out)
    assert out.getvalue() == data and read.to_json() == meta
    assert attachment.file_name(read) == entry["desk_file_name"]


@by_name([e for e in ATTACHMENTS["valid"] if "envelope" in e])
def test_attachment_envelope_vector_seals_and_opens(entry: dict[str, Any]) -> None:
    record = entry["envelope"]
    content = content_from_parts(entry)
    sealed = envelope.seal(
        content,
        public_keys(record),
        envelope.SealPath[record["path"].upper()],
        rng=FixedRandom(bytes.fromhex(record["randomness_hex"])),
    )
    assert sealed == envelope_bytes(record)
    for recipient in record["recipients"]:
        identity = PrivateKey(bytes.fromhex(recipient["secret_key_hex"]))
        decoder = attachment.Decoder(None)
        envelope.open_stream(io.BytesIO(sealed), cast(BinaryIO, decoder), [identity])
        assert decoder.finish().sha256 == entry["file_sha256"]


@by_name(ATTACHMENTS["invalid"])
def test_invalid_attachment_vector_is_refused(entry: dict[str, Any]) -> None:
    expected = getattr(attachment, entry["expected_error"])
    assert issubclass(expected, attachment.AttachmentError)
    with pytest.raises(attachment.AttachmentError) as caught:
        attachment.decode(io.BytesIO(bytes.fromhex(entry["content_hex"])), None)
    assert type(caught.value) is expected
    assert caught.value.hint


def test_report_vector_lists_its_attachments() -> None:
    vector = ATTACHMENTS["report"]
    metas = [attachment.Metadata(**entry) for entry in vector["attachments"]]
    reply = bytes.fromhex(vector["reply_public_key_hex"])
    document = report.document(vector["fields"], reply, vector["sealed_by"], metas)
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    assert text == vector["document"]
    assert json.loads(text)["attachments"] == vector["attachments"]
    constants = ATTACHMENTS["constants"]
    assert bytes.fromhex(constants["magic_hex"]) == attachment.MAGIC
    assert (constants["min_metadata"], constants["max_metadata"]) == (2, 65536)
