"""Real Chromium (Debian's) against a real source server on 127.0.0.1, in every browser mode.

Modes: ``normal``; ``no-wasm`` (WebAssembly deleted before any page script,
as Tor Browser's Safer level looks to a page); ``jitless`` (V8's JIT off);
``no-subtle`` (``crypto.subtle`` deleted, as on a plain-http onion outside
Tor Browser, so the pure-JS AES-GCM fallback runs); ``no-js`` (JavaScript
disabled, Tor Browser's Safest level).
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import CHROMIUM, FLAGS, PASSPHRASE, Server, Team
from playwright.sync_api import BrowserContext, Playwright, sync_playwright
from source_fixtures import running_source

from portal import keyfile
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


@pytest.fixture
def server(tmp_path: Path, team: Team) -> Iterator[Server]:
    """A fresh source server (its own data directory and SQLite database) for one test."""
    data_dir, secret = tmp_path / "data", secrets.token_urlsafe(48)
    settings = {"PORTAL_SECRET_KEY": secret, "PORTAL_KEYS": str(team.manifest_dir),
                "PORTAL_DATA_DIR": str(data_dir)}  # fmt: skip
    with running_source(settings, tmp_path) as (url, log):
        yield Server(url, data_dir, log, secret, team)


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
