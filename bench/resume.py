"""Benchmark: a resumable upload through the real server, cut at random points; bytes sent twice.

Starts the source interface on 127.0.0.1 with a throw-away demo key and,
in front of it, a TCP relay that counts the bytes going to the server and
closes the connection (both ways, mid-request) when the count passes each of
CUTS random points, chosen uniformly over the upload. Debian's Chromium opens
the form through the relay, fills in the required answers, chooses one
SIZE_MIB MiB file of random bytes and sends: the page's own upload client
(portal/static/dist/form.js) seals and uploads it, notices each cut, asks the
server for its offset and carries on. Prints the envelope's size, the PATCH
body bytes the browser sent and how many of them were sent twice, per cut
and against the goal of at most one upload request (16 envelope chunks,
1,048,832 bytes) per interruption. Then it opens what the server stored and
checks the file came back whole.

    .venv/bin/python bench/resume.py                        # 100 MiB, 10 cuts
    .venv/bin/python bench/resume.py --size-mib 3 --cuts 3   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from portal import attachment, envelope, keyfile
from portal.demo import KEY_FILE_NAME, UNLOCK_FILE_NAME, ensure_demo_key

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
BIN = Path(sys.executable).parent
UPLOAD_REQUEST = 16 * (envelope.CHUNK_SIZE + envelope.TAG_SIZE)
ANSWERS = {
    "consent_informed": "yes",
    "consent_publication": "no",
    "consent_raise_with_state": "no",
    "consent_reply": "no",
}


class Relay:
    """A TCP relay to ``upstream`` that cuts the connection at given byte counts."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sent = 0  # bytes relayed towards the server since arm()
        self.cuts: list[int] = []
        self.done = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def arm(self, cuts: list[int]) -> None:
        with self.lock:
            self.sent, self.cuts, self.done = 0, sorted(cuts), 0

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self.pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, False), daemon=True).start()

    def allowance(self, size: int) -> int:
        """How many of ``size`` bytes may pass before the next cut (all: ``size``)."""
        with self.lock:
            if self.done < len(self.cuts) and self.sent + size >= self.cuts[self.done]:
                allowed = max(self.cuts[self.done] - self.sent, 0)
                self.done += 1
                self.sent += allowed
                return allowed
            self.sent += size
            return size

    def pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                allowed = self.allowance(len(data)) if counted else len(data)
                dst.sendall(data[:allowed])
                if allowed < len(data):
                    break  # the cut: both directions close mid-request
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextlib.contextmanager
def source_server(work: Path) -> Iterator[tuple[int, Path, Path]]:
    """The source interface on a free port; yields the port, data directory and key folder."""
    keys = ensure_demo_key(work / "keys").parent
    env = {**os.environ, "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
           "PORTAL_KEYS": str(keys), "PORTAL_DATA_DIR": str(work / "data")}  # fmt: skip
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN / "portal", "db", "upgrade"], env=env, check=True, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [BIN / "portal", "serve", "source", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("resume: the source server did not start")
        yield port, work / "data", keys
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def check_stored(data_dir: Path, keys: Path, digest: str) -> bool:
    """Open every stored attachment with the demo key; True if one is the file, whole."""
    passphrase = (keys / UNLOCK_FILE_NAME).read_text().strip()
    key = keyfile.load(keys / KEY_FILE_NAME, passphrase)
    for path in data_dir.rglob("*"):
        if not path.is_file():
            continue
        plain = data_dir.parent / "opened"
        try:
            with path.open("rb") as src, plain.open("wb") as dst:
                envelope.open_stream(src, dst, [key])
        except envelope.EnvelopeError:
            continue  # the database, not an envelope
        with plain.open("rb") as src:
            if src.read(8) != attachment.MAGIC:
                continue
        with plain.open("rb") as src:
            meta = attachment.decode(src, None)
        plain.unlink()
        return meta.sha256 == digest
    return False


def send(page: Any, url: str, upload: Path) -> dict[str, Any]:
    """Fill in the form and choose the file; what the browser then sends is recorded."""
    sent: dict[str, Any] = {"bodies": [], "length": 0}

    def record(request: Any) -> None:
        if request.method == "PATCH" and "/uploads/" in request.url:
            sent["bodies"].append(len(request.post_data_buffer or b""))
        elif request.method == "POST" and request.url.endswith("/uploads"):
            sent["length"] = int(request.headers["upload-length"])

    page.on("request", record)
    page.goto(f"{url}/report")
    page.fill('[name="account"]', "A benchmark report: nothing happened.")
    for name, value in ANSWERS.items():
        page.check(f'[name="{name}"][value="{value}"]')
    page.set_input_files("#attachment-files", str(upload))
    page.wait_for_function("() => !document.querySelector('[data-js-submit]').disabled")
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100, help="file size (default 100)")
    parser.add_argument("--cuts", type=int, default=10, help="interruptions (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="for the random cut points")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"resume: {CHROMIUM} is missing (apt-get install chromium)")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    rng = random.Random(seed)
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as d, sync_playwright() as p:
        work = Path(d)
        upload = work / "upload.bin"
        with upload.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        digest = hashlib.sha256(upload.read_bytes()).hexdigest()
        with source_server(work) as (port, data_dir, keys):
            relay = Relay(port)
            context = p.chromium.launch_persistent_context(
                str(work / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            try:
                page = context.new_page()
                sent = send(page, f"http://127.0.0.1:{relay.port}", upload)
                cuts = [rng.randrange(size // 50, size * 95 // 100) for _ in range(args.cuts)]
                relay.arm(cuts)
                started = time.perf_counter()
                page.click('#report-form button[type="submit"]:visible')
                page.locator("[data-receipt]").first.wait_for(state="visible", timeout=3_600_000)
                seconds = time.perf_counter() - started
            finally:
                context.close()
            whole = check_stored(data_dir, keys, digest)
    report(args, seed, sent, relay.done, seconds, whole)
    return 0 if whole and relay.done == args.cuts else 1


def report(
    args: argparse.Namespace, seed: int, sent: dict[str, Any], cuts: int, seconds: float,
    whole: bool,
) -> None:  # fmt: skip
    bodies, total = sent["bodies"], sent["length"]
    twice = sum(bodies) - total
    per_cut = twice / cuts if cuts else 0.0
    print(
        f"{args.size_mib} MiB file, envelope {total} B; {cuts} cuts at random points (seed {seed})"
    )
    print(f"  PATCH requests: {len(bodies)}, body bytes sent: {sum(bodies)} B")
    print(f"  bytes sent twice: {twice} B = {twice / (1 << 20):.2f} MiB")
    print(
        f"  per interruption: {per_cut:.0f} B = {per_cut / UPLOAD_REQUEST:.2f}x one upload "
        f"request ({UPLOAD_REQUEST} B)"
    )
    print(f"  from Send to receipt: {seconds:.1f} s (the client waits 1 s, 2 s, ... after a cut)")
    verdict = "met" if cuts and per_cut <= UPLOAD_REQUEST else "NOT met"
    print(f"goal (at most one upload request sent twice per interruption): {verdict}")
    print(f"the server holds the file whole (SHA-256 checked with the demo key): {whole}")


if __name__ == "__main__":
    sys.exit(main())
