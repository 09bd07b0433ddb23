"""``portal.signing`` against the known answers in ``tests/vectors/v1/signatures.json``.

The same file checks the browser's ``web/src/signature.js``
(``web/test/replies-signature.test.mjs``). The generator's ``--check`` runs
here, so a change of the format or of the generator that is not followed by a
regeneration fails the suite.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from portal import envelope, returnbundle, signing

VECTORS = Path(__file__).resolve().parent / "vectors"
DATA: dict[str, Any] = json.loads((VECTORS / "v1" / "signatures.json").read_text())


def test_the_vectors_are_what_the_generator_writes() -> None:
    proc = subprocess.run(
        [sys.executable, str(VECTORS / "signatures.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_the_constants_are_the_modules() -> None:
    constants = DATA["constants"]
    assert constants["reply_purpose"].encode() == signing.REPLY_PURPOSE
    assert constants["return_purpose"].encode() == signing.RETURN_PURPOSE
    assert constants["fingerprint_domain"].encode() == signing.FINGERPRINT_DOMAIN
    assert signing.REPLY_PURPOSE != signing.RETURN_PURPOSE


@pytest.mark.parametrize("key", DATA["keys"], ids=lambda k: k["label"])
def test_keys_ids_and_fingerprints(key: dict[str, Any]) -> None:
    public = bytes.fromhex(key["public_key_hex"])
    assert signing.public_key_of(bytes.fromhex(key["seed_hex"])) == public
    assert signing.key_id(public).hex() == key["key_id_hex"]
    assert signing.fingerprint(public) == key["fingerprint"]
    signing.check_public_key(public)
    # Domain-separated: never the fingerprint or key id the same bytes get as an X25519 key.
    assert signing.fingerprint(public) != envelope.fingerprint(public)
    assert signing.key_id(public) != envelope.key_id(public)


@pytest.mark.parametrize("case", DATA["replies"], ids=lambda c: c["name"])
def test_valid_reply_signatures(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["envelope_hex"])
    message = signing.reply_message(case["thread_id"], data)
    assert message.hex() == case["message_hex"]
    seed = bytes.fromhex(DATA["keys"][0]["seed_hex"])
    assert signing.sign(SigningKey(seed), message).hex() == case["signature_hex"]
    signature = bytes.fromhex(case["signature_hex"])
    assert signing.verify(bytes.fromhex(case["public_key_hex"]), message, signature)


@pytest.mark.parametrize("case", DATA["invalid_replies"], ids=lambda c: c["name"])
def test_invalid_reply_signatures_fail(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["envelope_hex"])
    message = signing.reply_message(case["thread_id"], data)
    signature = base64.b64decode(case["signature_base64"])
    desk = bytes.fromhex(DATA["keys"][0]["public_key_hex"])
    assert not signing.verify(desk, message, signature)


@pytest.mark.parametrize("case", DATA["returns"], ids=lambda c: c["name"])
def test_return_signatures(case: dict[str, Any]) -> None:
    manifest = bytes.fromhex(case["return_json_hex"])
    message = signing.return_message(manifest)
    assert message.hex() == case["message_hex"]
    public = bytes.fromhex(case["public_key_hex"])
    assert signing.verify(public, message, bytes.fromhex(case["signature_hex"]))
    # The same signature is no reply signature, whatever the thread.
    assert not signing.verify(public, signing.REPLY_PURPOSE + message[len(signing.RETURN_PURPOSE):],
                              bytes.fromhex(case["signature_hex"]))  # fmt: skip
    document = returnbundle.signature_bytes(
        signing.key_id(public), bytes.fromhex(case["signature_hex"])
    )
    assert document.hex() == case["return_sig_hex"]


@pytest.mark.parametrize("case", DATA["invalid_public_keys"], ids=lambda c: c["description"])
def test_invalid_public_keys_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(signing.InvalidSigningKey):
        signing.check_public_key(bytes.fromhex(case["public_key_hex"]))


def test_verify_never_raises() -> None:
    public = bytes.fromhex(DATA["keys"][0]["public_key_hex"])
    for key, sig in ((public, b""), (public, bytes(65)), (b"", bytes(64)), (bytes(32), bytes(64))):
        assert signing.verify(key, b"message", sig) is False
    with pytest.raises(ValueError, match="thread id"):
        signing.reply_message("A" * 32, b"")
