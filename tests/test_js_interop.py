"""Cross-implementation proof: the browser modules (``web/src``, run in node) and Python agree.

JS-sealed envelopes open with the real ``portal-desk decrypt`` (key files written
by ``portal.keyfile``); Python-sealed envelopes open with the JS ``open``, with
both JS crypto backends (WebCrypto, and the pure-JS fallback the browser loads
without ``crypto.subtle``). Receipts, their derived values, the digit rules and
the report document built from a form agree on random inputs. Nothing here is
skipped: without node or ``node_modules`` the tests fail and say to run ``npm ci``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from nacl.public import PrivateKey

from portal import attachment, envelope, keyfile, receipt, report

if TYPE_CHECKING:
    from conftest import DeskKey

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "web" / "tools" / "interop.mjs"
PORTAL_DESK = str(Path(sys.executable).with_name("portal-desk"))
SIZES = [0, 1, 65527, 65528, 65529, 131064, 300 * 1024 + 5]
BACKENDS = ["webcrypto", "noble"]
NEEDED = ["tweetnacl", "@noble/hashes", "@noble/ciphers"]


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, or a failure (never a skip) saying how to get what is missing."""
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed: install Node.js 20 or later, then run `npm ci`")
    missing = [name for name in NEEDED if not (ROOT / "node_modules" / name).is_dir()]
    if missing:
        pytest.fail(f"node_modules lacks {', '.join(missing)}: run `npm ci` in {ROOT}")
    return found


def run_node(
    node: str, *args: object, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [node, str(TOOL), *map(str, args)],
        input=stdin, capture_output=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip


def node_json(node: str, command: str, request: Any, *args: object) -> Any:
    proc = run_node(node, command, *args, stdin=json.dumps(request).encode())
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def content(size: int, seed: int) -> bytes:
    return hashlib.shake_256(f"interop content {seed}".encode()).digest(size)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def desk_decrypt(key: DeskKey, sealed: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PORTAL_DESK, "decrypt", "--secret-key", str(key.secret_file),
         "--passphrase-file", str(key.passphrase_file), "-o", str(out), str(sealed)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# --- envelopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", SIZES)
def test_js_sealed_envelopes_open_with_portal_desk(
    node: str, desk_keys: tuple[DeskKey, ...], tmp_path: Path, size: int, backend: str
) -> None:
    plain = content(size, size)
    (tmp_path / "in").write_bytes(plain)
    recipients = [k.recipient.public_key for k in desk_keys]
    to = [a for pk in recipients for a in ("--to", b64(pk))]
    sealed = tmp_path / "sealed"
    proc = run_node(node, "seal", "--backend", backend, "--path", "browser", *to,
                    tmp_path / "in", sealed)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    data = sealed.read_bytes()
    padded = envelope.padded_size(size)
    assert len(data) == envelope.header_size(3) + padded + 16 * envelope.chunk_count(padded)
    with sealed.open("rb") as f:
        header = envelope.inspect(f)
    assert header.path is envelope.SealPath.BROWSER
    assert header.key_ids == tuple(envelope.key_id(pk) for pk in recipients)
    # Through the real command and its key file: every recipient for the largest size,
    # one (a different one for each size) otherwise, to keep the Argon2id unlocks few.
    keys = desk_keys if size == max(SIZES) else [desk_keys[SIZES.index(size) % 3]]
    for key in keys:
        out = tmp_path / f"out-{key.label}"
        result = desk_decrypt(key, sealed, out)
        assert result.returncode == 0, result.stderr
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(plain).digest()


@pytest.fixture(scope="module")
def secret_keys(desk_keys: tuple[DeskKey, ...]) -> list[PrivateKey]:
    """The desk keys, unlocked from their key files."""
    return [keyfile.load(k.secret_file, k.passphrase) for k in desk_keys]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", list(envelope.SealPath))
def test_python_sealed_envelopes_open_with_js(
    node: str, secret_keys: list[PrivateKey], tmp_path: Path, path: envelope.SealPath, backend: str
) -> None:
    recipients = [bytes(k.public_key) for k in secret_keys]
    jobs, expected = [], []
    for size in SIZES:
        plain = content(size, size + 1)
        sealed = tmp_path / f"sealed-{size}"
        sealed.write_bytes(envelope.seal(plain, recipients, path))
        for i, key in enumerate(secret_keys):
            out = tmp_path / f"out-{size}-{i}"
            jobs.append(
                {"input": str(sealed), "output": str(out), "secret_key_hex": bytes(key).hex()}
            )
            expected.append((out, hashlib.sha256(plain).digest()))
    assert node_json(node, "open-many", jobs, "--backend", backend) == [{"ok": True}] * len(jobs)
    for out, digest in expected:
        assert hashlib.sha256(out.read_bytes()).digest() == digest


def test_js_refuses_damaged_python_envelopes_with_the_python_error_names(
    node: str, secret_keys: list[PrivateKey], tmp_path: Path
) -> None:
    key = secret_keys[0]
    good = envelope.seal(content(200_000, 7), [bytes(key.public_key)], envelope.SealPath.DESK)
    damaged = {
        "NotAnEnvelope": b"PK\x03\x04" + good[4:],
        "UnsupportedVersion": b"\x02" + good[1:],
        "TruncatedEnvelope": good[:-1],
        "MalformedEnvelope": good + b"\x00",
        "AuthenticationFailed": good[:1000] + bytes([good[1000] ^ 1]) + good[1001:],
    }
    for name, data in damaged.items():
        with pytest.raises(getattr(envelope, name)):
            envelope.open_bytes(data, [key])
        (tmp_path / "bad").write_bytes(data)
        proc = run_node(node, "open", "--secret-key-hex", bytes(key).hex(),
                        tmp_path / "bad", tmp_path / "out")  # fmt: skip
        assert proc.returncode == 1
        assert proc.stderr.decode().startswith(f"interop: {name}: ")
        assert not (tmp_path / "out").exists()
    other = bytes(PrivateKey.generate())
    (tmp_path / "good").write_bytes(good)
    proc = run_node(
        node, "open", "--secret-key-hex", other.hex(), tmp_path / "good", tmp_path / "o"
    )
    assert proc.stderr.decode().startswith("interop: NoMatchingKey: ")


def test_fingerprints_agree(node: str) -> None:
    keys = [bytes(PrivateKey.generate().public_key) for _ in range(20)]
    got = node_json(node, "fingerprint", None, *map(b64, keys))
    assert got == [envelope.fingerprint(k) for k in keys]


def test_recipient_key_checks_agree(node: str) -> None:
    p = 2**255 - 19
    order8 = [
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    ]
    specials = [0, 1, p - 1, p, p + 1, 2**255 - 1, 2**255, 2**255 + 1, 2**256 - 1, *order8]
    specials += [u + p for u in (0, 1, *order8) if u + p < 2**256] + [2**255 + 9, 9]
    keys = [u.to_bytes(32, "little") for u in specials]
    keys += [os.urandom(32) for _ in range(100)] + [os.urandom(31), os.urandom(33), b""]
    expected = []
    for key in keys:
        try:
            envelope.check_public_key(key)
            expected.append(None)
        except envelope.InvalidRecipientKey as err:
            expected.append({"error": str(err), "name": "InvalidRecipientKey"})
    assert node_json(node, "check-keys", [k.hex() for k in keys]) == expected
    assert sum(e is not None and "low-order" in e["error"] for e in expected) == 5


# --- receipts ----------------------------------------------------------------------------------


def python_derivation(text: str) -> dict[str, str]:
    return {
        "digits": receipt.normalize(text),
        "lookup_token_hex": receipt.lookup_token(text).hex(),
        "reply_secret_hex": receipt.reply_secret(text).hex(),
        "reply_public_key_hex": receipt.reply_public_key(text).hex(),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_receipt_derivations_agree_for_random_receipts(node: str, backend: str) -> None:
    ours = [receipt.generate() for _ in range(100)]
    answer = node_json(node, "receipts", {"derive": ours, "generate": 100}, "--backend", backend)
    assert answer["derive"] == [python_derivation(t) for t in ours]
    theirs = answer["generated"]
    assert len(set(theirs)) == 100
    # JS-made receipts are valid for Python, in display form, and derive the same values.
    again = node_json(node, "receipts", {"derive": theirs}, "--backend", backend)
    for text, derived in zip(theirs, again["derive"], strict=True):
        assert receipt.display(receipt.normalize(text)) == text
        assert derived == python_derivation(text)


def _python_normalize(text: str) -> dict[str, str]:
    try:
        return {"digits": receipt.normalize(text)}
    except receipt.InvalidReceipt as err:
        return {"error": str(err), "name": "InvalidReceipt"}


def typed_variants(rng: random.Random) -> Iterator[str]:
    """Receipts as people might type them, and near misses."""
    zeros = [c for c in range(0x110000) if unicodedata.decimal(chr(c), None) == 0]
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()] + ["-", "\ufeff", "\u2013"]
    for _ in range(300):
        digits = receipt.normalize(receipt.generate())
        zero = rng.choice(zeros)
        chars = [chr(zero + int(d)) if rng.random() < 0.7 else d for d in digits]
        for _ in range(rng.randrange(4)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(spaces))
        if rng.random() < 0.2:
            i = rng.randrange(len(chars))
            chars[i] = rng.choice(["O", "l", "\u00b2", "\u0966", "7", ""])
        yield "".join(chars)


def test_receipt_normalisation_agrees_on_every_digit_and_typed_variants(node: str) -> None:
    rng = random.Random(20261123)
    texts = list(typed_variants(rng))
    # Every Unicode decimal digit Python knows, as a whole receipt of that digit.
    for cp in range(0x110000):
        if unicodedata.decimal(chr(cp), None) == 0:
            texts.append("".join(chr(cp) for _ in range(30)))
            texts.append("0" * 29 + chr(cp + 9))
    # Every code point Python treats as whitespace, around and inside a receipt.
    base = receipt.generate()
    for cp in range(0x110000):
        if chr(cp).isspace() or unicodedata.category(chr(cp)) in ("Zs", "Cf"):
            texts.append(chr(cp) + base + chr(cp))
            texts.append(base.replace(" ", chr(cp)))
    texts += ["", " ", base * 5, base + " " * (200 - len(base)), base + " " * (201 - len(base))]
    answer = node_json(node, "receipts", {"normalize": texts})
    expected = [_python_normalize(t) for t in texts]
    mismatches = [
        (t.encode("unicode_escape").decode(), e, a)
        for t, e, a in zip(texts, expected, answer["normalize"], strict=True)
        if e != a
    ]
    assert mismatches == []
    assert sum("digits" in e for e in expected) > 100


# --- the report document -----------------------------------------------------------------------

NOISE = [" ", "\n", "\t", "\u3000", "\u00a0", "\x1c", "\u0085", "\ufeff", "\u200b"]


def random_text(rng: random.Random, limit: int) -> str:
    alphabet = "abc xyz ÉéñØ Жжш العربية 中文 😀\n\r-'\"<>&\\/\x01\x7f\u2028\u2029"
    core = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, min(limit, 60))))
    pad = lambda: "".join(rng.choice(NOISE) for _ in range(rng.randrange(3)))  # noqa: E731
    return pad() + core.strip() + pad()


def random_form(rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """A rendered form (as element specs, in form order) and what the browser would post."""
    elements: list[dict[str, Any]] = [{"name": "csrf_token", "type": "hidden", "value": "tok"}]
    posted: dict[str, list[str]] = {"csrf_token": ["tok"]}
    for f in report.FIELDS:
        values: list[str] = []
        if f.kind in ("multi", "choice"):
            kind = "checkbox" if f.kind == "multi" else "radio"
            picks = {v for v, _ in f.choices if rng.random() < 0.3}
            if kind == "radio" and (picks or (f.required and rng.random() < 0.9)):
                picks = {rng.choice(sorted(picks or {v for v, _ in f.choices}))}
            if f.name == "when_month":  # a <select> instead of radios
                value = rng.choice(["", *sorted(v for v, _ in f.choices)])
                elements.append({"tag": "select", "type": "select-one", "name": f.name,
                                 "value": value})  # fmt: skip
                posted[f.name] = [value]
                continue
            for v, _ in f.choices:
                elements.append({"name": f.name, "type": kind, "value": v, "checked": v in picks})
                if v in picks:
                    values.append(v)
        elif f.kind == "flag":
            checked = rng.random() < 0.5
            elements.append({"name": f.name, "type": "checkbox", "value": "on", "checked": checked})
            values = ["on"] if checked else []
        elif f.kind == "year":
            value = rng.choice(["", " 2024 ", str(rng.randrange(1990, 2030))])
            elements.append({"name": f.name, "type": "text", "value": value})
            values = [value]
        else:
            value = random_text(rng, f.max_length)
            if f.required and not value.strip():
                value += " x "
            tag = "textarea" if f.kind == "textarea" else "input"
            kind = "textarea" if f.kind == "textarea" else "text"
            elements.append({"tag": tag, "name": f.name, "type": kind, "value": value})
            values = [value]
        if values:
            posted[f.name] = values
    consent = rng.random() < 0.5
    elements.append({"name": "server_seal_consent", "type": "checkbox", "value": "yes",
                     "checked": consent})  # fmt: skip
    if consent:
        posted["server_seal_consent"] = ["yes"]
    elements.append({"tag": "button", "type": "submit", "name": "", "value": ""})
    return elements, posted


def test_report_document_from_the_form_agrees_with_portal_report(node: str) -> None:
    rng = random.Random(15)
    requests, expected = [], []
    for _ in range(100):
        elements, posted = random_form(rng)
        try:
            fields = report.from_form(posted)
        except report.ReportError:
            continue  # a required answer is missing: the browser's own validation stops these
        reply_key = os.urandom(32)
        requests.append({"elements": elements, "reply_public_key": b64(reply_key)})
        document = report.document(fields, reply_key, "browser")
        # The same compact text as the server's no-JavaScript path writes.
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        expected.append({"fields": fields, "document": document, "serialised": text})
    assert len(requests) >= 50
    assert node_json(node, "report", requests) == expected


# --- attachments -------------------------------------------------------------------------------

ATTACHMENT_SIZES = [0, 1, 65519, 65520, 300 * 1024 + 5, 2 * 1048576 + 77]
NAMES = [
    "photo.jpg",
    "../../etc/passwd",
    "ctl\x00\x01\x1f\x7f\u2028name\n.txt",
    "Журналист محامية 😀 défenseuse.pdf",
    "n" * 5000,
    "",
]


def python_open_attachment(
    sealed: Path, key: PrivateKey, out: Path
) -> tuple[attachment.Metadata, bytes]:
    """Decrypt with portal.envelope and decode with portal.attachment, streaming."""
    plain = out.with_suffix(".content")
    with sealed.open("rb") as src, plain.open("wb") as dst:
        envelope.open_stream(src, dst, [key])
    with plain.open("rb") as src, out.open("wb") as dst:
        meta = attachment.decode(src, dst)
    data = plain.read_bytes()
    return meta, data[16 + meta.size :]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", ATTACHMENT_SIZES)
def test_js_sealed_attachments_decode_with_portal_attachment(
    node: str, secret_keys: list[PrivateKey], tmp_path: Path, size: int, backend: str
) -> None:
    data = content(size, size + 11)
    (tmp_path / "in").write_bytes(data)
    name = NAMES[ATTACHMENT_SIZES.index(size) % len(NAMES)]
    described = {"name": name, "type": "image/jpeg" if size % 2 else ""}
    to = [a for k in secret_keys for a in ("--to", b64(bytes(k.public_key)))]
    # A small step: many requests, each sealed twice by the tool and compared.
    step = 3 * (envelope.CHUNK_SIZE + envelope.TAG_SIZE) + 100
    sealed = tmp_path / "sealed"
    proc = run_node(node, "seal-attachment", "--backend", backend, "--step", step, *to,
                    tmp_path / "in", sealed, stdin=json.dumps(described).encode())  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    listed = json.loads(proc.stdout)
    with sealed.open("rb") as f:
        assert envelope.inspect(f).path is envelope.SealPath.BROWSER
    for key in secret_keys:
        meta, meta_bytes = python_open_attachment(sealed, key, tmp_path / "file")
        assert (tmp_path / "file").read_bytes() == data
        assert meta.sha256 == hashlib.sha256(data).hexdigest()
        assert meta.listing() == listed
        assert meta.name == attachment.clean_name(name)
        assert meta.media_type == described["type"]
        # Byte for byte what portal.attachment writes for the same values.
        assert meta_bytes == attachment.encode_metadata(meta)


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_sealed_attachments_open_with_js(
    node: str, secret_keys: list[PrivateKey], tmp_path: Path, backend: str
) -> None:
    recipients = [bytes(k.public_key) for k in secret_keys]
    for size in ATTACHMENT_SIZES:
        data = content(size, size + 12)
        name = NAMES[ATTACHMENT_SIZES.index(size) % len(NAMES)]
        encoder = attachment.Encoder(iter([data]), size, name=name, media_type="text/plain")
        sealed = tmp_path / f"sealed-{size}"
        with sealed.open("wb") as dst:
            envelope.seal_stream(encoder, dst, recipients, encoder.length, envelope.SealPath.SERVER)
        out = tmp_path / f"out-{size}"
        proc = run_node(node, "open-attachment", "--backend", backend, "--secret-key-hex",
                        bytes(secret_keys[size % 3]).hex(), sealed, out)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        assert out.read_bytes() == data
        assert proc.stdout == attachment.encode_metadata(encoder.metadata)
