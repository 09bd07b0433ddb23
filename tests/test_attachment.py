"""The attachment content (FORMAT.md §15.6): encoder, decoder, and hostile metadata.

Real envelopes: the encoder's output is sealed with ``envelope.seal_stream``
and opened with ``envelope.open_stream`` straight into the decoder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import pytest
from nacl.public import PrivateKey

from portal import attachment, envelope, report
from portal.attachment import (
    Decoder,
    Encoder,
    HashMismatch,
    MalformedAttachment,
    Metadata,
    NotAnAttachment,
)

FILE_ID = "0123456789abcdef0123456789abcdef"


def content(
    data: bytes, meta: dict[str, Any] | bytes | None = None, *, size: int | None = None
) -> bytes:
    """A content with the given metadata object (default: the correct one) or raw bytes."""
    if meta is None:
        meta = good_meta(data)
    raw = meta if isinstance(meta, bytes) else json.dumps(meta, ensure_ascii=False).encode()
    declared = len(data) if size is None else size
    return attachment.MAGIC + declared.to_bytes(8, "big") + data + raw


def good_meta(data: bytes, **changes: Any) -> dict[str, Any]:
    meta = {
        "id": FILE_ID,
        "media_type": "image/jpeg",
        "name": "photo.jpg",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "type": "reprisal-attachment",
        "version": 1,
    }
    meta.update(changes)
    return meta


def decode(data: bytes, pieces: int = 1) -> tuple[Metadata, bytes]:
    out = io.BytesIO()
    decoder = Decoder(out)
    step = max(1, -(-len(data) // pieces))
    for at in range(0, len(data), step):
        decoder.write(data[at : at + step])
    return decoder.finish(), out.getvalue()


def encoded(data: bytes, **kwargs: Any) -> tuple[Encoder, bytes]:
    kwargs.setdefault("name", "photo.jpg")
    kwargs.setdefault("media_type", "image/jpeg")
    enc = Encoder(io.BytesIO(data), len(data), **kwargs)
    return enc, b"".join(enc)


# --- encoding -------------------------------------------------------------------------


def test_the_layout_is_magic_size_file_then_sorted_compact_metadata() -> None:
    data = b"\x00\xffhello"
    enc, raw = encoded(data, file_id=FILE_ID, name="Фото «1».jpg")
    assert raw[:8] == b"UNRPFILE"
    assert int.from_bytes(raw[8:16], "big") == len(data)
    assert raw[16 : 16 + len(data)] == data
    meta = raw[16 + len(data) :]
    expected = {**good_meta(data), "name": "Фото «1».jpg"}
    assert meta == json.dumps(
        expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert (
        len(raw)
        == enc.length
        == attachment.content_length(
            len(data), file_id=FILE_ID, media_type="image/jpeg", name="Фото «1».jpg"
        )
    )
    assert enc.metadata == Metadata(FILE_ID, "image/jpeg", "Фото «1».jpg", expected["sha256"], 7)


def test_the_length_is_known_before_reading_and_ids_are_fresh() -> None:
    first = Encoder(io.BytesIO(b""), 1 << 30, name="big.mp4", media_type="video/mp4")
    assert first.length == 16 + (1 << 30) + len(
        attachment.encode_metadata(
            Metadata(first.file_id, "video/mp4", "big.mp4", "0" * 64, 1 << 30)
        )
    )
    second = Encoder(io.BytesIO(b""), 0, name="x", media_type="")
    assert first.file_id != second.file_id
    assert len(first.file_id) == 32 and int(first.file_id, 16) >= 0
    with pytest.raises(RuntimeError, match="not been read"):
        _ = first.metadata


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("", "unnamed"),
        ("n" * 5000, "n" * 1000),
        ("\U0001f600" * 1001, "\U0001f600" * 1000),
        ("bad\udc80name", "bad\ufffdname"),
        ("../../etc/passwd", "../../etc/passwd"),
        ("a\x00b\x1b[2J", "a\x00b\x1b[2J"),
    ],
)
def test_names_are_recorded_as_given_cut_to_1000_code_points(given: str, recorded: str) -> None:
    _, raw = encoded(b"abc", name=given)
    meta, data = decode(raw)
    assert meta.name == recorded and data == b"abc"


def test_media_types_too_long_are_dropped_not_cut() -> None:
    assert encoded(b"", media_type="a/" + "b" * 253)[0].media_type == "a/" + "b" * 253
    assert encoded(b"", media_type="a/" + "b" * 254)[0].media_type == ""
    assert encoded(b"", media_type="x/\ud800")[0].media_type == ""


def test_a_source_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="ended after 2 of the 3"):
        b"".join(Encoder(io.BytesIO(b"ab"), 3, name="f", media_type=""))
    with pytest.raises(ValueError, match="longer than the 1 bytes"):
        b"".join(Encoder([b"ab"], 1, name="f", media_type=""))
    with pytest.raises(ValueError, match="32 lower-case hex"):
        Encoder([], 0, name="f", media_type="", file_id="../" + "0" * 29)


def test_sealed_and_opened_streaming_through_an_envelope(tmp_path: Any) -> None:
    identity = PrivateKey.generate()
    data = os.urandom(300_000)  # five chunks
    enc = Encoder(io.BytesIO(data), len(data), name="scan.pdf", media_type="application/pdf")
    sealed = io.BytesIO()
    envelope.seal_stream(
        enc, sealed, [bytes(identity.public_key)], enc.length, envelope.SealPath.SERVER
    )
    out = io.BytesIO()
    decoder = Decoder(out)
    envelope.open_stream(io.BytesIO(sealed.getvalue()), cast(BinaryIO, decoder), [identity])
    meta = decoder.finish()
    assert out.getvalue() == data
    assert meta == enc.metadata and meta.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("pieces", [1, 3, 1000])
def test_the_decoder_accepts_any_split(pieces: int) -> None:
    data = os.urandom(5000)
    meta, out = decode(content(data), pieces)
    assert out == data and meta.size == 5000
    assert attachment.decode(io.BytesIO(content(data)), None) == meta


# --- hostile content ------------------------------------------------------------------

DATA = b"evidence bytes"

Hostile = Callable[[], bytes]
HOSTILE: dict[str, tuple[Hostile, type[Exception], str]] = {
    "a report": (lambda: b'{"type":"reprisal-report"}', NotAnAttachment, "UNRPFILE"),
    "wrong magic": (lambda: b"UNRPFILX" + content(DATA)[8:], NotAnAttachment, "UNRPFILE"),
    "empty": (lambda: b"", MalformedAttachment, "0 bytes: too short"),
    "cut in the prefix": (lambda: content(DATA)[:12], MalformedAttachment, "too short"),
    "S beyond L": (
        lambda: content(DATA, size=len(DATA) + 1000),
        MalformedAttachment,
        "before the end of the",
    ),
    "S huge": (lambda: content(b"", size=(1 << 64) - 1), MalformedAttachment, "before the end"),
    "no metadata": (lambda: content(DATA, b""), MalformedAttachment, "0 bytes: too short"),
    "M of 1": (lambda: content(DATA, b"{"), MalformedAttachment, "1 bytes: too short"),
    "M over 64 KiB": (
        lambda: content(DATA, good_meta(DATA, name="x" * 70000)),
        MalformedAttachment,
        "longer than 65536",
    ),
    "not JSON": (lambda: content(DATA, b"{not json}"), MalformedAttachment, "not valid JSON"),
    "not UTF-8": (lambda: content(DATA, b'{"\xff":1}'), MalformedAttachment, "not UTF-8"),
    "BOM": (
        lambda: content(DATA, b"\xef\xbb\xbf" + json.dumps(good_meta(DATA)).encode()),
        MalformedAttachment,
        "not valid JSON",
    ),
    "array": (lambda: content(DATA, b"[1,2]"), MalformedAttachment, "not a JSON object"),
    "repeated member": (
        lambda: content(DATA, json.dumps(good_meta(DATA)).encode()[:-1] + b',"size":0}'),
        MalformedAttachment,
        "repeats",
    ),
    "NaN size": (
        lambda: content(
            DATA, json.dumps(good_meta(DATA)).replace('"size": 14', '"size": NaN').encode()
        ),
        MalformedAttachment,
        "NaN is not allowed",
    ),
    "extra member": (
        lambda: content(DATA, good_meta(DATA, path="/etc/passwd")),
        MalformedAttachment,
        "unexpected 'path'",
    ),
    "missing member": (
        lambda: content(DATA, {k: v for k, v in good_meta(DATA).items() if k != "sha256"}),
        MalformedAttachment,
        "missing sha256",
    ),
    "wrong type": (
        lambda: content(DATA, good_meta(DATA, type="reprisal-report")),
        MalformedAttachment,
        "type is not",
    ),
    "version 2": (
        lambda: content(DATA, good_meta(DATA, version=2)),
        MalformedAttachment,
        "version 2",
    ),
    "version true": (
        lambda: content(DATA, good_meta(DATA, version=True)),
        MalformedAttachment,
        "version True",
    ),
    "size as string": (
        lambda: content(DATA, good_meta(DATA, size="14")),
        MalformedAttachment,
        "size is not",
    ),
    "size as float": (
        lambda: content(DATA, good_meta(DATA, size=14.0)),
        MalformedAttachment,
        "size is not",
    ),
    "size mismatch": (
        lambda: content(DATA, good_meta(DATA, size=13)),
        MalformedAttachment,
        "size of 13 bytes but the file has 14",
    ),
    "sha mismatch": (
        lambda: content(DATA, good_meta(DATA, sha256=hashlib.sha256(b"other").hexdigest())),
        HashMismatch,
        "SHA-256",
    ),
    "sha upper case": (
        lambda: content(DATA, good_meta(DATA, sha256=hashlib.sha256(DATA).hexdigest().upper())),
        MalformedAttachment,
        "sha256 is not",
    ),
    "id as path": (
        lambda: content(DATA, good_meta(DATA, id="../../../../etc/passwd..........")),
        MalformedAttachment,
        "id is not",
    ),
    "id as number": (
        lambda: content(DATA, good_meta(DATA, id=7)),
        MalformedAttachment,
        "id is not",
    ),
    "name of 5000": (
        lambda: content(DATA, good_meta(DATA, name="n" * 5000)),
        MalformedAttachment,
        "name is 5000 characters",
    ),
    "empty name": (
        lambda: content(DATA, good_meta(DATA, name="")),
        MalformedAttachment,
        "name is 0",
    ),
    "name as list": (
        lambda: content(DATA, good_meta(DATA, name=["a"])),
        MalformedAttachment,
        "name is not a string",
    ),
    "name with a lone surrogate": (
        lambda: content(DATA, json.dumps(good_meta(DATA, name="\ud800")).encode()),
        MalformedAttachment,
        "lone surrogate",
    ),
    "media type too long": (
        lambda: content(DATA, good_meta(DATA, media_type="x" * 256)),
        MalformedAttachment,
        "media_type is 256",
    ),
    "media type null": (
        lambda: content(DATA, good_meta(DATA, media_type=None)),
        MalformedAttachment,
        "media_type is not a string",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_content_is_refused_with_a_hint(case: str) -> None:
    make, error, fragment = HOSTILE[case]
    with pytest.raises(error, match=None) as caught:
        decode(make(), pieces=3)
    assert fragment in str(caught.value), str(caught.value)
    assert len(caught.value.hint) > 10  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "a\x00b", "\x1b[31mred\x1b[0m", "C:\\Windows\\x.exe", "x" * 1000]
)
def test_hostile_names_are_accepted_as_text_and_never_reach_a_file_name(name: str) -> None:
    meta, _ = decode(content(DATA, good_meta(DATA, name=name)))
    assert meta.name == name
    assert attachment.file_name(meta) == f"attachment-{FILE_ID}" + attachment.safe_extension(name)
    assert "/" not in attachment.file_name(meta) and "\\" not in attachment.file_name(meta)


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("photo.JPG", ".jpg"),
        ("a.tar.gz", ".gz"),
        ("noext", ""),
        ("trailing.", ""),
        (".bashrc", ".bashrc"),
        ("x.abcdefghijk", ""),
        ("x.jp g", ""),
        ("x.../..", ""),
        ("x.ｊｐｇ", ""),
        ("x.٣", ""),
    ],
)
def test_safe_extension(name: str, ext: str) -> None:
    assert attachment.safe_extension(name) == ext


def test_metadata_over_the_limit_is_refused_before_it_is_all_kept() -> None:
    decoder = Decoder(None)
    decoder.write(attachment.MAGIC + (0).to_bytes(8, "big") + b"x" * 65536)
    with pytest.raises(MalformedAttachment, match="longer than 65536"):
        decoder.write(b"x")


# --- the report's list ----------------------------------------------------------------


def listed(n: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{i:032x}",
            "media_type": "",
            "name": f"f{i}",
            "sha256": "0" * 64,
            "size": i,
        }
        for i in range(n)
    ]


def test_report_documents_list_attachments_in_order_only_when_there_are_some() -> None:
    key = bytes(32)
    assert "attachments" not in report.document({"account": "x"}, key, "server")
    metas = [Metadata(**entry) for entry in listed(3)][::-1]
    doc = report.document({"account": "x"}, key, "server", metas)
    assert doc["attachments"] == [m.listing() for m in metas]
    assert list(doc) == [
        "type",
        "version",
        "sealed_by",
        "reply_public_key",
        "fields",
        "attachments",
    ]
    with pytest.raises(MalformedAttachment):
        report.document({"account": "x"}, key, "server", metas + metas[:1])


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "1 to 64"),
        (listed(65), "1 to 64"),
        ({"id": "x"}, "1 to 64"),
        (["x"], "entry 1 is not an object"),
        ([{**listed()[0], "type": "reprisal-attachment"}], "unexpected 'type'"),
        ([{k: v for k, v in listed()[0].items() if k != "size"}], "missing size"),
        (listed(1) * 2, "same id twice"),
        ([{**listed()[0], "size": -1}], "size is not"),
        ([{**listed()[0], "name": "n" * 1001}], "name is 1001"),
    ],
)
def test_hostile_attachment_lists_are_refused(value: object, fragment: str) -> None:
    with pytest.raises(MalformedAttachment, match=None) as caught:
        attachment.check_listing(value)
    assert fragment in str(caught.value)


def test_a_good_list_is_read_back() -> None:
    assert [m.listing() for m in attachment.check_listing(listed(64))] == listed(64)
