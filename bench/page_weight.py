"""Benchmark: what the form page weighs, and whether the form shows before the crypto.

Starts the source interface on 127.0.0.1 with a throw-away demo key, opens
``/report`` in Debian's Chromium, and records every response. Prints each
resource's raw and gzipped size and the total against the 60 KB budget; for
comparison, the gzipped size of OpenPGP.js's browser build (what the bulk
cipher alone would cost with it). Then it loads the page again with the
crypto bundle held back for DELAY ms (as on a slow Tor circuit) and prints
when the form was on screen and accepting input, and when the crypto arrived.

    .venv/bin/python bench/page_weight.py
"""

from __future__ import annotations

import argparse
import gzip
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Route, sync_playwright

from portal.config import PROJECT_ROOT
from portal.demo import ensure_demo_key

BUDGET = 60_000
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
BIN = Path(sys.executable).parent


def start_server(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
        "PORTAL_KEYS": str(ensure_demo_key(work / "keys").parent),
        "PORTAL_DATA_DIR": str(work / "data"),
    }
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN / "portal", "db", "upgrade"], env=env, check=True, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [BIN / "portal", "serve", "source", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the source server did not start")


def weigh(context: Any, url: str) -> list[tuple[str, int, int]]:
    page = context.new_page()
    seen: list[tuple[str, int, int]] = []

    def record(response: Any) -> None:
        body = response.body()
        seen.append((response.url.removeprefix(url), len(body), len(gzip.compress(body, 9))))

    page.on("response", record)
    page.goto(f"{url}/report", wait_until="networkidle")
    page.close()
    return seen


def timing(context: Any, url: str, delay_ms: int) -> tuple[float, float]:
    """Hold the crypto bundle back ``delay_ms``; when was the form usable, when the crypto?"""
    page = context.new_page()
    held: list[Route] = []
    page.route("**/dist/crypto*.js", lambda route: held.append(route))
    start = time.perf_counter()
    page.goto(f"{url}/report", wait_until="commit")
    page.wait_for_selector("#report-form", state="visible")
    page.fill('[name="account"]', "typed before the crypto arrived")
    form_at = time.perf_counter() - start
    while not held:
        page.wait_for_timeout(10)
    page.wait_for_timeout(max(0, delay_ms - (time.perf_counter() - start) * 1000))
    held[0].continue_()
    page.wait_for_function("() => Boolean(self.PortalCrypto)", timeout=60_000)
    crypto_at = time.perf_counter() - start
    page.close()
    return form_at, crypto_at


def report(name: str, seen: list[tuple[str, int, int]]) -> int:
    total = sum(gz for _, _, gz in seen)
    print(f"\n{name}: {len(seen)} resources")
    for path, raw, gz in seen:
        print(f"  {path[:58]:58} {raw:8d} B raw {gz:7d} B gzipped")
    print(f"  total {total} B gzipped = {total / BUDGET:.2f}x the {BUDGET} B budget")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-weight-") as d, sync_playwright() as p:
        proc, url = start_server(Path(d))
        try:
            for js in (True, False):
                context = p.chromium.launch_persistent_context(
                    str(Path(d) / f"profile-{js}"), executable_path=CHROMIUM, headless=True,
                    args=FLAGS, java_script_enabled=js,
                )  # fmt: skip
                report("with JavaScript" if js else "JavaScript off", weigh(context, url))
                if js:
                    form_at, crypto_at = timing(context, url, args.delay_ms)
                    print(
                        f"  crypto bundle held back {args.delay_ms} ms: form on screen and typed"
                        f" into at {form_at * 1000:.0f} ms, crypto ready at"
                        f" {crypto_at * 1000:.0f} ms"
                    )
                context.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    openpgp = PROJECT_ROOT / "node_modules" / "openpgp" / "dist" / "openpgp.min.js"
    if openpgp.exists():
        gz = len(gzip.compress(openpgp.read_bytes(), 9))
        print(f"\nfor comparison, OpenPGP.js 6 browser build alone: {gz} B gzipped")


if __name__ == "__main__":
    main()
