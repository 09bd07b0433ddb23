"""Clearly labelled demo keys, so that `make run` works before the team's keys exist.

The demo encryption key, the demo signing key and their passphrase sit side
by side in the demo directory: anything sealed to the demo key is readable,
and anything can be signed as the demo desk, by whoever holds the machine.
Both manifest entries carry ``"demo": true`` and a label that says so, and
``portal.keys`` refuses manifests that mix demo keys with real ones.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

from portal import keyfile
from portal.desk.output import AtomicOutput
from portal.keys import (
    KeyManifestError,
    Manifest,
    RecipientKey,
    SigningPublicKey,
    load_manifest,
)

DEMO_LABEL = "DEMO KEY - not for real reports (made by make run)"
DEMO_SIGNING_LABEL = "DEMO SIGNING KEY - not for real replies (made by make run)"
MANIFEST_NAME = "manifest.json"
KEY_FILE_NAME = "demo-secret.key"
SIGNING_FILE_NAME = "demo-signing.key"
UNLOCK_FILE_NAME = "demo-passphrase.txt"


def ensure_demo_key(directory: Path) -> Path:
    """Create the demo keys and manifest in ``directory`` unless present; return the manifest.

    An existing manifest there must be a demo manifest: a real one is never
    touched or mistaken for a demo. A demo manifest made before signing keys
    existed gains a demo signing key (its passphrase is the one beside it).
    """
    manifest_path = directory / MANIFEST_NAME
    if manifest_path.exists():
        existing = load_manifest(manifest_path)
        if not existing.is_demo:
            raise KeyManifestError(
                f"{manifest_path} exists and is not a demo manifest",
                "Point --dir at an empty directory for the demo key.",
            )
        if not existing.signing_keys:
            passphrase = (directory / UNLOCK_FILE_NAME).read_text().splitlines()[0]
            _write(manifest_path, existing.recipients, _signer(directory, passphrase))
        return manifest_path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(24)
    with AtomicOutput(directory / UNLOCK_FILE_NAME, overwrite=True) as fh:
        fh.write(passphrase.encode() + b"\n")
    recipient = keyfile.write_new(directory / KEY_FILE_NAME, DEMO_LABEL, passphrase)
    recipients = (dataclasses.replace(recipient, demo=True),)
    _write(manifest_path, recipients, _signer(directory, passphrase), overwrite=False)
    return manifest_path


def _signer(directory: Path, passphrase: str) -> SigningPublicKey:
    made = keyfile.write_new_signing(directory / SIGNING_FILE_NAME, DEMO_SIGNING_LABEL, passphrase)
    return dataclasses.replace(made, demo=True)


def _write(
    path: Path,
    recipients: tuple[RecipientKey, ...],
    signer: SigningPublicKey,
    overwrite: bool = True,
) -> None:
    manifest = Manifest(recipients, (signer,))
    with AtomicOutput(path, overwrite=overwrite) as fh:
        fh.write(json.dumps(manifest.to_json(), indent=2).encode() + b"\n")
