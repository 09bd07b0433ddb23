"""What the browser tests share: Debian's Chromium, its flags, the modes, the server handle."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JS_MODES = ("normal", "no-wasm", "jitless", "no-subtle")
PASSPHRASE = "browser tests passphrase"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Team:
    """A recipient key pair as the desk holds it, and the manifest the server uses."""

    key_file: Path
    passphrase_file: Path
    manifest_dir: Path


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    log: Path
    secret: str
    team: Team
