"""Benchmark: the source server's memory while it takes a large attachment, both ways.

For each size, a fresh ``portal serve source`` (the development server, one
process) takes one file:

- **resumable**: the file sealed here as a browser would (``portal.attachment``
  and ``envelope.seal_stream``, path ``browser``), then sent with
  ``POST /uploads`` and ``PATCH /uploads/<token>`` in chunks of 1,048,832 bytes,
  then attached to a report with ``POST /report/sealed`` and ``X-Attachments``;
- **no-JavaScript**: the form posted as ``multipart/form-data`` to
  ``POST /report/plain`` in one streamed request, which the server seals as it
  arrives (encrypted spool, then the attachment envelope).

It prints the server's resident memory when idle (after one form page), its
peak (``VmHWM`` from ``/proc``) during the upload, the difference, and the
throughput; then, in the same run, the ratio of the largest size's figure
to the smallest's (1.0 means flat: memory does not grow with the file).

    .venv/bin/python bench/upload_memory.py                      # 256 MiB and 1 GiB
    .venv/bin/python bench/upload_memory.py --sizes-mib 4 16     # smoke run
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey

from portal import attachment, envelope
from portal.envelope import SealPath
from portal.uploads import MAX_CHUNK

MIB = 1 << 20
BIN = Path(sys.executable).parent
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ANSWERS = {"consent_informed": "yes", "consent_publication": "anonymous",
           "consent_raise_with_state": "no", "consent_reply": "yes",
           "account": "Benchmark report with one large file."}  # fmt: skip
BLOCK = os.urandom(MIB)  # the file's content: one random MiB, repeated


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manifest(folder: Path) -> Path:
    """Two fresh recipient keys (their secret halves are thrown away: nothing is opened here)."""
    entries = []
    for label in ("Bench A", "Bench B"):
        public = bytes(PrivateKey.generate().public_key)
        entries.append({"label": label, "public_key": base64.b64encode(public).decode(),
                        "fingerprint": envelope.fingerprint(public), "created": "2026-01-01",
                        "status": "active"})  # fmt: skip
    path = folder / "manifest.json"
    path.write_text(json.dumps({"version": 1, "recipients": entries}), encoding="utf-8")
    return path


@contextlib.contextmanager
def server(folder: Path, keys: Path) -> Iterator[Server]:
    env = {**os.environ, "PORTAL_SECRET_KEY": secrets.token_urlsafe(32),
           "PORTAL_KEYS": str(keys), "PORTAL_DATA_DIR": str(folder / "data"),
           "PORTAL_MAX_FILE_MIB": "4096", "PORTAL_MAX_ATTACHMENTS_MIB": "4096",
           "PORTAL_MIN_FREE_MIB": "0"}  # fmt: skip
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN / "portal", "db", "upgrade"], env=env, check=True, capture_output=True)
    port, log = free_port(), folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BIN / "portal", "serve", "source", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while b"serving the source interface" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text())
            time.sleep(0.05)
        wait_for_port(port, deadline)  # the message comes just before the socket is bound
        yield Server(port, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for_port(port: int, deadline: float) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def memory(pid: int, field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of ``pid`` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1)) / 1024


def form_page(srv: Server) -> tuple[str, str]:
    """The session cookie and CSRF token of a fresh form."""
    conn = srv.connect()
    conn.request("GET", "/report")
    response = conn.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie", "").split(";")[0]
    match = CSRF.search(page)
    assert match and cookie, "no form"
    return cookie, match.group(1)


def request(srv: Server, method: str, path: str, body: object, headers: dict[str, str]) -> dict:
    conn = srv.connect()
    conn.request(method, path, body=body, headers=headers)  # type: ignore[arg-type]
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
    return json.loads(data) if data.startswith(b"{") else {}


def blocks(size: int) -> Iterator[bytes]:
    left = size
    while left:
        piece = BLOCK[: min(MIB, left)]
        left -= len(piece)
        yield piece


def public_keys(keys: Path) -> list[bytes]:
    return [base64.b64decode(r["public_key"]) for r in json.loads(keys.read_text())["recipients"]]


def seal_file(size: int, keys: Path, folder: Path) -> Path:
    """The file sealed as the browser seals it, into a temporary file on the client's side."""
    publics = public_keys(keys)
    encoder = attachment.Encoder(blocks(size), size, name="video.mp4", media_type="video/mp4")
    path = folder / "sealed.env"
    with path.open("wb") as out:
        envelope.seal_stream(encoder, out, publics, encoder.length, SealPath.BROWSER)
    return path


def resumable(srv: Server, sealed: Path, keys: Path) -> None:
    cookie, csrf = form_page(srv)
    base = {"Cookie": cookie, "X-CSRF-Token": csrf}
    length = sealed.stat().st_size
    token = request(srv, "POST", "/uploads", None, {**base, "Upload-Length": str(length)})["token"]
    with sealed.open("rb") as src:
        at = 0
        while piece := src.read(MAX_CHUNK):
            headers = {**base, "Upload-Offset": str(at),
                       "Content-Type": "application/octet-stream"}  # fmt: skip
            at = request(srv, "PATCH", f"/uploads/{token}", piece, headers)["offset"]
    publics = public_keys(keys)
    reply = bytes(PrivateKey.generate().public_key)
    document = {"type": "reprisal-report", "version": 1, "sealed_by": "browser",
                "reply_public_key": base64.b64encode(reply).decode(),
                "fields": {"account": "Benchmark report with one large file."}}  # fmt: skip
    report = envelope.seal(json.dumps(document).encode(), publics, SealPath.BROWSER)
    headers = {**base, "X-Lookup-Token": secrets.token_hex(32), "X-Attachments": token,
               "X-Reply-Key": base64.b64encode(reply).decode(),
               "Content-Type": "application/octet-stream"}  # fmt: skip
    request(srv, "POST", "/report/sealed", report, headers)


def no_javascript(srv: Server, size: int) -> None:
    cookie, csrf = form_page(srv)
    boundary = secrets.token_hex(16)
    fields = {**ANSWERS, "csrf_token": csrf, "server_seal_consent": "yes"}
    head = io.BytesIO()
    for name, value in fields.items():
        head.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n".encode())  # fmt: skip
    head.write(f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; '
               f'filename="video.mp4"\r\nContent-Type: video/mp4\r\n\r\n'.encode())  # fmt: skip
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head.getvalue()) + size + len(tail)

    def body() -> Iterator[bytes]:
        yield head.getvalue()
        yield from blocks(size)
        yield tail

    conn = srv.connect()
    conn.request("POST", "/report/plain", body=body(), headers={
        "Cookie": cookie, "Content-Length": str(length),
        "Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    response = conn.getresponse()
    page = response.read().decode()
    if response.status != 200 or "data-receipt" not in page:
        raise RuntimeError(f"POST /report/plain: {response.status}")


@dataclass(frozen=True)
class Figure:
    path: str
    size_mib: int
    idle: float
    peak: float
    seconds: float

    @property
    def above(self) -> float:
        return self.peak - self.idle


def measure(path: str, size_mib: int, keys: Path) -> Figure:
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as temp:
        folder = Path(temp)
        sealed = seal_file(size_mib * MIB, keys, folder) if path == "resumable" else None
        with server(folder, keys) as srv:
            form_page(srv)  # the first page loads the templates: part of idle
            idle = memory(srv.pid, "VmRSS")
            start = time.perf_counter()
            if sealed is not None:
                resumable(srv, sealed, keys)
            else:
                no_javascript(srv, size_mib * MIB)
            seconds = time.perf_counter() - start
            peak = memory(srv.pid, "VmHWM")
        stored = sum(p.stat().st_size for p in (folder / "data" / "envelopes").iterdir())
        assert stored > size_mib * MIB, "the file was not stored"
    return Figure(path, size_mib, idle, peak, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes_mib)
    with tempfile.TemporaryDirectory(prefix="upload-bench-keys-") as temp:
        keys = manifest(Path(temp))
        figures = [measure(p, s, keys) for p in ("resumable", "no-javascript") for s in sizes]
    print(f"{'path':<15}{'file MiB':>9}{'idle MiB':>10}{'peak MiB':>10}{'above idle':>12}"
          f"{'seconds':>9}{'MiB/s':>8}")  # fmt: skip
    for f in figures:
        print(f"{f.path:<15}{f.size_mib:>9}{f.idle:>10.1f}{f.peak:>10.1f}{f.above:>12.1f}"
              f"{f.seconds:>9.1f}{f.size_mib / f.seconds:>8.1f}")  # fmt: skip
    for path in ("resumable", "no-javascript"):
        small = next(f for f in figures if f.path == path and f.size_mib == sizes[0])
        large = next(f for f in figures if f.path == path and f.size_mib == sizes[-1])
        ratio = large.above / max(small.above, 0.1)
        print(
            f"{path}: peak above idle for {large.size_mib} MiB is {ratio:.2f}x that for"
            f" {small.size_mib} MiB ({large.above - small.above:+.1f} MiB;"
            f" the file is {large.size_mib / small.size_mib:.0f}x larger)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
