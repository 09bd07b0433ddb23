"""The browser bundles and their Subresource Integrity hashes.

``npm run build`` writes ``portal/static/dist/`` and its ``manifest.json``
(``{"form.js": {"path": "dist/form.js", "integrity": "sha384-..."}, ...}``).
Every hash is checked here against the file the server would send, so that
a stale manifest cannot make browsers refuse the scripts; if anything is
missing or wrong, the form is served without scripts (it works without
JavaScript) and the operator is told at start-up.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLES = ("form.js", "crypto.js", "aes-fallback.js", "replies.js", "followup.js")
MANIFEST = "dist/manifest.json"
BUILD_HINT = "Run `npm ci && npm run build` (make run and make test do it)."


@dataclass(frozen=True)
class Script:
    path: str  # relative to the static folder
    integrity: str


@dataclass(frozen=True)
class Assets:
    form: Script
    crypto: Script
    fallback: Script
    replies: Script
    followup: Script


def integrity(data: bytes) -> str:
    """The SRI value of ``data`` (SHA-384, as the build writes it)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _script(static: Path, entry: object) -> Script:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ValueError("an entry has no path")
    path = str(entry["path"])
    target = (static / path).resolve()
    if static.resolve() not in target.parents:
        raise ValueError(f"{path} is outside the static folder")
    if entry.get("integrity") != integrity(target.read_bytes()):
        raise ValueError(f"the integrity hash of {path} does not match the file")
    return Script(path, str(entry["integrity"]))


def load(static: Path) -> Assets | None:
    """The bundles named by the build manifest, or ``None`` (logged) when unusable."""
    try:
        manifest = json.loads((static / MANIFEST).read_text(encoding="utf-8"))
        scripts = [_script(static, manifest.get(name)) for name in BUNDLES]
    except (OSError, ValueError, AttributeError) as err:
        log.warning(
            "the browser bundles are unusable (%s), so the form is served without"
            " JavaScript and the server must seal every report. %s",
            err,
            BUILD_HINT,
        )
        return None
    return Assets(*scripts)
