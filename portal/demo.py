"""A clearly labelled demo key, so that `make run` works before the team's keys exist.

The demo secret key and its passphrase sit side by side in the demo
directory: anything sealed to it is readable by whoever holds the machine.
Its manifest entry carries ``"demo": true`` and a label that says so, and
``portal.keys`` refuses manifests that mix demo keys with real ones.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

from portal import keyfile
from portal.desk.output import AtomicOutput
from portal.keys import KeyManifestError, Manifest, load_manifest

DEMO_LABEL = "DEMO KEY - not for real reports (made by make run)"
MANIFEST_NAME = "manifest.json"
KEY_FILE_NAME = "demo-secret.key"
UNLOCK_FILE_NAME = "demo-passphrase.txt"


def ensure_demo_key(directory: Path) -> Path:
    """Create the demo key pair and manifest in ``directory`` unless present; return the manifest.

    An existing manifest there must be a demo manifest: a real one is never
    touched or mistaken for a demo.
    """
    manifest_path = directory / MANIFEST_NAME
    if manifest_path.exists():
        if not load_manifest(manifest_path).is_demo:
            raise KeyManifestError(
                f"{manifest_path} exists and is not a demo manifest",
                "Point --dir at an empty directory for the demo key.",
            )
        return manifest_path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(24)
    with AtomicOutput(directory / UNLOCK_FILE_NAME, overwrite=True) as fh:
        fh.write(passphrase.encode() + b"\n")
    recipient = keyfile.write_new(directory / KEY_FILE_NAME, DEMO_LABEL, passphrase)
    manifest = Manifest((dataclasses.replace(recipient, demo=True),))
    with AtomicOutput(manifest_path) as fh:
        fh.write(json.dumps(manifest.to_json(), indent=2).encode() + b"\n")
    return manifest_path
