"""Real Chromium (Debian's) against a real source server on 127.0.0.1, in every browser mode.

Modes: ``normal``; ``no-wasm`` (WebAssembly deleted before any page script,
as Tor Browser's Safer level looks to a page); ``jitless`` (V8's JIT off);
``no-subtle`` (``crypto.subtle`` deleted, as on a plain-http onion outside
Tor Browser, so the pure-JS AES-GCM fallback runs); ``no-js`` (JavaScript
disabled, Tor Browser's Safest level).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import BIN, CHROMIUM, FLAGS, PASSPHRASE, Server, Team
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from portal import keyfile
from portal.config import PROJECT_ROOT
from portal.keys import Manifest


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make test` (or apt-get install chromium)")


@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory) -> Team:
    root = tmp_path_factory.mktemp("team")
    recipient = keyfile.write_new(root / "team.key", "Browser test team key", PASSPHRASE)
    (root / "passphrase").write_text(PASSPHRASE + "\n")
    manifest_dir = root / "keys"
    manifest_dir.mkdir()
    (manifest_dir / "manifest.json").write_text(json.dumps(Manifest((recipient,)).to_json()))
    return Team(root / "team.key", root / "passphrase", manifest_dir)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the source server exited early:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"the source server did not start:\n{log.read_text()}")


@pytest.fixture
def server(tmp_path: Path, team: Team) -> Iterator[Server]:
    """A fresh source server (its own data directory and SQLite database) for one test."""
    data_dir = tmp_path / "data"
    secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        "PORTAL_SECRET_KEY": secret,
        "PORTAL_KEYS": str(team.manifest_dir),
        "PORTAL_DATA_DIR": str(data_dir),
    }
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN / "portal", "db", "upgrade"], env=env, check=True, capture_output=True)
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BIN / "portal", "serve", "source", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        )  # fmt: skip
    try:
        _wait_for(port, proc, log)
        yield Server(f"http://127.0.0.1:{port}", data_dir, log, secret, team)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    require_chromium()
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser_for(playwright: Playwright, tmp_path: Path) -> Iterator[object]:
    """``browser_for(mode)`` opens a fresh Chromium profile in that mode."""
    opened: list[BrowserContext] = []

    def launch(mode: str) -> BrowserContext:
        profile = tmp_path / f"profile-{mode}-{len(opened)}"
        args = FLAGS + (["--js-flags=--jitless"] if mode == "jitless" else [])
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=args,
            java_script_enabled=mode != "no-js",
        )  # fmt: skip
        if mode == "no-wasm":
            context.add_init_script("delete globalThis.WebAssembly;")
        if mode == "no-subtle":
            context.add_init_script(
                "Object.defineProperty(globalThis.crypto, 'subtle', {value: undefined});"
            )
        opened.append(context)
        return context

    yield launch
    for context in opened:
        context.close()
    for profile in tmp_path.glob("profile-*"):
        shutil.rmtree(profile, ignore_errors=True)
