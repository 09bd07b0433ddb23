"""Generate the signature known answers, ``tests/vectors/v1/signatures.json``.

Run ``.venv/bin/python tests/vectors/signatures.py`` to (re)write the file and
``.venv/bin/python tests/vectors/signatures.py --check`` to verify that the
committed file is exactly what this script produces (``tests/test_signing.py``
runs the check). The messages are built here from ``docs/BUNDLES.md`` §8.6
alone, not with ``portal.signing``, and signed with PyNaCl's Ed25519 (which
is deterministic), so the file checks ``portal/signing.py`` and the browser's
``web/src/signature.js`` rather than restating them. Every fixed seed is
SHA-256 of ``"reprisals-portal test vectors v1 signing key: " || label``.
These keys are public test data: never sign anything real with them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "v1" / "signatures.json"

REPLY_PURPOSE = b"reprisals-portal/v1 reply\n"
RETURN_PURPOSE = b"reprisals-portal/v1 return\n"
FINGERPRINT_DOMAIN = b"reprisals-portal signing key fingerprint v1"
ORDER = 2**252 + 27742317777372353535851937790883648493  # of the Ed25519 group
FIELD = 2**255 - 19
THREAD = "0123456789abcdef0123456789abcdef"
OTHER_THREAD = "fedcba9876543210fedcba9876543210"


def seed(label: str) -> bytes:
    return hashlib.sha256(
        b"reprisals-portal test vectors v1 signing key: " + label.encode()
    ).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_entry(label: str) -> dict[str, Any]:
    secret = seed(label)
    public = bytes(SigningKey(secret).verify_key)
    digest = hashlib.sha512(FINGERPRINT_DOMAIN + public).digest()
    groups = (int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 40, 5))
    return {
        "label": label,
        "seed_hex": secret.hex(),
        "public_key_hex": public.hex(),
        "public_key_base64": b64(public),
        "key_id_hex": digest[:16].hex(),
        "fingerprint": " ".join(f"{g:05d}" for g in groups),
    }


def reply_message(thread_id: str, envelope: bytes) -> bytes:
    return REPLY_PURPOSE + thread_id.encode("ascii") + hashlib.sha256(envelope).digest()


def sign(label: str, message: bytes) -> bytes:
    return bytes(SigningKey(seed(label)).sign(message).signature)


def reply_case(
    name: str, description: str, key: str, thread_id: str, envelope: bytes, signature: bytes
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "public_key_hex": key_entry(key)["public_key_hex"],
        "thread_id": thread_id,
        "envelope_hex": envelope.hex(),
        "envelope_sha256_hex": hashlib.sha256(envelope).hexdigest(),
        "signature_base64": b64(signature),
    }


def valid_replies() -> list[dict[str, Any]]:
    cases = []
    for name, envelope in (("short", b"an envelope stands here"), ("empty", b"")):
        message = reply_message(THREAD, envelope)
        case = reply_case(name, f"the desk signs a reply ({name} bytes for the envelope)",
                          "desk", THREAD, envelope, sign("desk", message))  # fmt: skip
        cases.append(
            {**case, "message_hex": message.hex(), "signature_hex": sign("desk", message).hex()}
        )
    return cases


def invalid_replies() -> list[dict[str, Any]]:
    envelope = b"an envelope stands here"
    good = sign("desk", reply_message(THREAD, envelope))
    r, s = good[:32], int.from_bytes(good[32:], "little")
    flipped = envelope[:-1] + bytes([envelope[-1] ^ 1])
    as_return = sign("desk", RETURN_PURPOSE + hashlib.sha256(envelope).digest())
    return [
        reply_case("other_key", "signed by a key the page does not list", "outsider", THREAD,
                   envelope, sign("outsider", reply_message(THREAD, envelope))),
        reply_case("other_thread", "a valid signature for another thread, moved to this one",
                   "desk", THREAD, envelope, sign("desk", reply_message(OTHER_THREAD, envelope))),
        reply_case("changed_envelope", "the envelope's last byte changed after signing", "desk",
                   THREAD, flipped, good),
        reply_case("non_canonical_s", "S + L in place of S: libsodium refuses it", "desk",
                   THREAD, envelope, r + (s + ORDER).to_bytes(32, "little")),
        reply_case("return_purpose", "signed with the return bundle's purpose string", "desk",
                   THREAD, envelope, as_return),
        reply_case("zero_signature", "64 zero bytes", "desk", THREAD, envelope, bytes(64)),
    ]  # fmt: skip


def return_cases() -> list[dict[str, Any]]:
    manifest = (
        b'{"acknowledgements":[{"id":"' + b"a" * 32 + b'","sha256":"' + b"0" * 64 + b'"}],'
        b'"made_on":"2026-11-23","replies":[],"type":"reprisals-portal return","version":1}\n'
    )
    message = RETURN_PURPOSE + hashlib.sha256(manifest).digest()
    signature = sign("desk", message)
    document = {
        "key_id": key_entry("desk")["key_id_hex"],
        "signature": b64(signature),
        "type": "reprisals-portal return signature",
        "version": 1,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return [
        {
            "name": "one_acknowledgement",
            "description": "return.json acknowledging one item, and its return.sig",
            "public_key_hex": key_entry("desk")["public_key_hex"],
            "return_json_hex": manifest.hex(),
            "message_hex": message.hex(),
            "signature_hex": signature.hex(),
            "return_sig_hex": text.hex(),
        }
    ]


def invalid_public_keys() -> list[dict[str, str]]:
    identity = (1).to_bytes(32, "little")  # the neutral point: small order
    order_two = (FIELD - 1).to_bytes(32, "little")  # y = -1: order 2
    non_canonical = (FIELD + 1).to_bytes(32, "little")  # y = p + 1 encodes y = 1 again
    off_curve = (2).to_bytes(32, "little")  # y = 2 has no x on the curve
    return [
        {"description": "the neutral element (small order)", "public_key_hex": identity.hex()},
        {"description": "the point of order 2", "public_key_hex": order_two.hex()},
        {"description": "y = p + 1, not canonical", "public_key_hex": non_canonical.hex()},
        {"description": "y = 2, not on the curve", "public_key_hex": off_curve.hex()},
        {"description": "31 bytes", "public_key_hex": key_entry("desk")["public_key_hex"][:62]},
    ]  # fmt: skip


def build() -> bytes:
    document = {
        "description": "Ed25519 signature known answers for the reprisals portal (docs/BUNDLES.md"
        " §8.6, docs/FORMAT.md §13.4), made by tests/vectors/signatures.py. Public test data.",
        "constants": {
            "reply_purpose": REPLY_PURPOSE.decode(),
            "return_purpose": RETURN_PURPOSE.decode(),
            "fingerprint_domain": FINGERPRINT_DOMAIN.decode(),
            "reply_message": "reply_purpose || thread_id (32 ASCII hex) || SHA-256(envelope)",
            "return_message": "return_purpose || SHA-256(return.json)",
        },
        "keys": [key_entry("desk"), key_entry("outsider")],
        "replies": valid_replies(),
        "invalid_replies": invalid_replies(),
        "returns": return_cases(),
        "invalid_public_keys": invalid_public_keys(),
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the file instead of writing")
    args = parser.parse_args(argv)
    data = build()
    if args.check:
        if not OUT.is_file() or OUT.read_bytes() != data:
            print(
                "signatures.py --check: tests/vectors/v1/signatures.json is out of date: "
                "run .venv/bin/python tests/vectors/signatures.py",
                file=sys.stderr,
            )
            return 1
        print("signatures.py --check: signatures.json matches")
        return 0
    OUT.write_bytes(data)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
