"""Benchmark: sealing in real Chromium with the portal's crypto bundle and with OpenPGP.js 6.

In each browser mode (normal; WebAssembly deleted before any page script, as
Tor Browser's "Safer" level looks to a page; V8 with ``--js-flags=--jitless``)
a fresh Chromium profile loads a static page from 127.0.0.1 with the built
``portal/static/dist/crypto.js`` and OpenPGP.js's browser build from
``node_modules``, and both encrypt the same SIZE MiB of random bytes in the
same run: ours with ``PortalCrypto.seal`` to one X25519 key, OpenPGP.js with
``openpgp.encrypt`` to a freshly generated curve25519 key (``type:
'curve25519'``, default settings: SEIPDv1, no compression; key generation is
not timed). Rounds are interleaved after one warm-up of each; the best and
median are printed with the ratio (goal: ours at most half of OpenPGP.js's
time in every mode). Each mode also opens our envelope in the page and checks
the digest. An extra informative line runs our fallback (``crypto.subtle``
removed, so the pure-JS AES-GCM bundle does the work).

Then, in the same three modes, an attachment: a FILE_MIB MiB File (random
bytes) sealed by ``PortalCrypto.attachment`` as an upload seals it, one
request's worth (16 chunks) at a time through ``File.slice``, with the
SHA-256 of the file computed as it goes (pure-JS @noble/hashes), the output
discarded as the network would take it; compared in the same run with
``PortalCrypto.seal`` of the same bytes already in memory (no reading, no
hash). The attachment's SHA-256 is checked against WebCrypto's digest.
Then the bundles' gzipped sizes.

    .venv/bin/python bench/browser_crypto.py                 # 10 MiB, 3 rounds; 100 MiB file
    .venv/bin/python bench/browser_crypto.py --size-mib 1 --rounds 1 --file-mib 2   # smoke run

Needs ``npm ci`` (the bundles are rebuilt with ``node web/build.mjs``) and
Debian's Chromium at /usr/bin/chromium; no browser is ever downloaded.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import gzip
import http.server
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "portal" / "static" / "dist"
OPENPGP = ROOT / "node_modules" / "openpgp" / "dist" / "openpgp.min.js"
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
MODES = {
    # name: (extra Chromium flags, init script run before any page script)
    "normal": ([], None),
    "no-wasm": ([], "delete globalThis.WebAssembly;"),
    "jitless": (["--js-flags=--jitless"], None),
}
NO_SUBTLE = "Object.defineProperty(globalThis.crypto, 'subtle', {value: undefined});"

PAGE = """<!doctype html>
<meta charset="utf-8"><title>browser crypto benchmark</title>
<script src="crypto.js"></script>
<script src="aes-fallback.js"></script>
<script src="openpgp.min.js"></script>
<script src="bench.js"></script>
<p>benchmark page</p>
"""

# Runs in the page. Every timed step awaits its result; the payload is made
# once per mode and shared by both libraries.
BENCH_JS = r"""
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
let state = null;

window.setup = async ({ sizeMiB, publicKey, fallback, withOpenpgp }) => {
  const started = performance.now();
  const ok = fallback ? await PortalCrypto.useFallback(self.PortalCryptoFallback)
                      : await PortalCrypto.useNative();
  if (!ok) throw new Error('the crypto backend failed its self-test');
  const payload = new Uint8Array(sizeMiB * 1048576);
  for (let at = 0; at < payload.length; at += 65536) {
    crypto.getRandomValues(payload.subarray(at, at + 65536));
  }
  // OpenPGP.js refuses to start without crypto.subtle: only the fallback line skips it.
  const pgpKey = withOpenpgp ? (await openpgp.generateKey({
    type: 'curve25519', userIDs: [{ name: 'bench' }], format: 'object',
  })).publicKey : null;
  state = { payload, recipient: b64(publicKey), pgpKey };
  return {
    backend: PortalCrypto.backendName(),
    webAssembly: typeof WebAssembly,
    subtle: typeof crypto.subtle,
    setupMs: performance.now() - started,
  };
};

window.ours = async () => {
  const t0 = performance.now();
  const sealed = await PortalCrypto.seal(state.payload, [state.recipient], 'browser');
  const ms = performance.now() - t0;
  state.sealed = sealed;
  return { ms, bytes: sealed.length };
};

window.openpgpjs = async () => {
  const t0 = performance.now();
  const message = await openpgp.createMessage({ binary: state.payload });
  const encrypted = await openpgp.encrypt({
    message, encryptionKeys: state.pgpKey, format: 'binary',
  });
  const ms = performance.now() - t0;
  return { ms, bytes: encrypted.length };
};

window.fileSetup = async ({ fileMiB }) => {
  const parts = [];
  for (let i = 0; i < fileMiB; i++) {
    const part = new Uint8Array(1048576);
    for (let at = 0; at < part.length; at += 65536) {
      crypto.getRandomValues(part.subarray(at, at + 65536));
    }
    parts.push(part);
  }
  state.file = new File(parts, 'bench.bin', { type: 'application/octet-stream' });
  const whole = await state.file.arrayBuffer(); // the benchmark's own check only
  const digest = await crypto.subtle.digest('SHA-256', whole);
  state.fileSha256 = PortalCrypto.bytes.toHex(new Uint8Array(digest));
  return { size: state.file.size };
};

window.attachment = async () => {
  const t0 = performance.now();
  const sealer = await PortalCrypto.attachment.create(state.file, [state.recipient]);
  let sent = 0;
  for (let at = 0, end; at < sealer.totalSize; at = end) {
    end = sealer.rangeEnd(at, 16 * 65552);
    sent += (await sealer.bytes(at, end - at)).length;
  }
  const ms = performance.now() - t0;
  return { ms, bytes: sent, same: sealer.metadata().sha256 === state.fileSha256 };
};

window.inMemory = async () => {
  const data = new Uint8Array(await state.file.arrayBuffer());
  const t0 = performance.now();
  const sealed = await PortalCrypto.seal(data, [state.recipient], 'browser');
  return { ms: performance.now() - t0, bytes: sealed.length };
};

window.verify = async (secretKey) => {
  const opened = await PortalCrypto.open(state.sealed, b64(secretKey));
  let diff = opened.length ^ state.payload.length;
  for (let i = 0; i < opened.length && !diff; i++) diff |= opened[i] ^ state.payload[i];
  return { same: diff === 0 };
};
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a secure context, so crypto.subtle exists) in a thread."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def build_bundles() -> None:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "esbuild").is_dir() or not OPENPGP.is_file():
        sys.exit("browser_crypto: needs node and node_modules: run `npm ci` first")
    subprocess.run([node, "web/build.mjs"], cwd=ROOT, check=True, capture_output=True)


def site(folder: Path) -> None:
    for name in ("crypto.js", "aes-fallback.js"):
        shutil.copy(DIST / name, folder / name)
    shutil.copy(OPENPGP, folder / "openpgp.min.js")
    (folder / "bench.js").write_text(BENCH_JS, encoding="utf-8")
    (folder / "index.html").write_text(PAGE, encoding="utf-8")


def run_mode(
    playwright: Any, url: str, flags: list[str], init: str | None, args: argparse.Namespace,
    *, fallback: bool = False, openpgp: bool = True,
) -> dict[str, Any]:  # fmt: skip
    key = PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS + flags
        )
        try:
            if init:
                context.add_init_script(init)
            page = context.new_page()
            page.goto(f"{url}/index.html")
            info = page.evaluate(
                "(a) => setup(a)",
                {
                    "sizeMiB": args.size_mib,
                    "publicKey": base64.b64encode(bytes(key.public_key)).decode(),
                    "fallback": fallback,
                    "withOpenpgp": openpgp,
                },
            )
            ours: list[float] = []
            theirs: list[float] = []
            sizes: dict[str, int] = {}
            for round_ in range(args.rounds + 1):  # round 0 is a warm-up
                result = page.evaluate("() => ours()")
                sizes["ours"] = result["bytes"]
                if round_:
                    ours.append(result["ms"])
                if openpgp:
                    result = page.evaluate("() => openpgpjs()")
                    sizes["openpgp"] = result["bytes"]
                    if round_:
                        theirs.append(result["ms"])
            check = page.evaluate("(k) => verify(k)", base64.b64encode(bytes(key)).decode())
        finally:
            context.close()
    if not check["same"]:
        raise SystemExit(f"browser_crypto: our envelope did not open correctly: {check}")
    return {"info": info, "ours": ours, "openpgp": theirs, "sizes": sizes}


def run_file(
    playwright: Any, url: str, flags: list[str], init: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    """Seal a FILE_MIB MiB File as an attachment, and the same bytes in memory, in one profile."""
    key = PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS + flags
        )
        try:
            if init:
                context.add_init_script(init)
            page = context.new_page()
            page.goto(f"{url}/index.html")
            setup = {"sizeMiB": 0, "fallback": False, "withOpenpgp": False,
                     "publicKey": base64.b64encode(bytes(key.public_key)).decode()}  # fmt: skip
            info = page.evaluate("(a) => setup(a)", setup)
            page.evaluate("(a) => fileSetup(a)", {"fileMiB": args.file_mib})
            streamed: list[float] = []
            memory: list[float] = []
            for _ in range(args.file_rounds):  # interleaved, no warm-up: each round is long
                result = page.evaluate("() => attachment()")
                if not result["same"]:
                    raise SystemExit("browser_crypto: the attachment's SHA-256 is wrong")
                streamed.append(result["ms"])
                memory.append(page.evaluate("() => inMemory()")["ms"])
        finally:
            context.close()
    return {"info": info, "streamed": streamed, "memory": memory}


def rate(mib: int, ms: float) -> str:
    return f"{mib / (ms / 1000):7.1f} MiB/s"


def describe(samples: list[float]) -> str:
    return f"{min(samples):8.1f} ms (median {statistics.median(samples):8.1f})"


def bundle_sizes() -> list[str]:
    lines = []
    total = 0
    for name in ("form.js", "crypto.js", "aes-fallback.js"):
        data = (DIST / name).read_bytes()
        packed = len(gzip.compress(data, 9))
        if name != "aes-fallback.js":
            total += packed
        lines.append(f"  {name:<16} {len(data):>7} B raw  {packed:>6} B gzipped")
    lines.append(f"  form.js + crypto.js: {total} B gzipped (aes-fallback.js only without subtle)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=10, help="payload size (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per library")
    parser.add_argument(
        "--no-fallback", action="store_true", help="skip the informative fallback line"
    )
    parser.add_argument("--file-mib", type=int, default=100, help="attachment size (default 100)")
    parser.add_argument("--file-rounds", type=int, default=2, help="rounds for the attachment")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"browser_crypto: {CHROMIUM} is missing (apt-get install chromium)")
    build_bundles()
    with tempfile.TemporaryDirectory(prefix="bench-site-") as folder:
        site(Path(folder))
        with serve(Path(folder)) as url, sync_playwright() as playwright:
            version = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            browser_version = version.version
            version.close()
            pgp = json.loads((OPENPGP.parent.parent / "package.json").read_text())["version"]
            print(f"Chromium {browser_version}, OpenPGP.js {pgp}, {args.size_mib} MiB payload,")
            print(f"best of {args.rounds} interleaved rounds after a warm-up (median in brackets)")
            print(
                "ours: PortalCrypto.seal to one X25519 key; OpenPGP.js: encrypt to a "
                "curve25519 key (SEIPDv1 defaults)"
            )
            worst = 0.0
            for mode, (flags, init) in MODES.items():
                r = run_mode(playwright, url, flags, init, args)
                ratio = min(r["ours"]) / min(r["openpgp"])
                worst = max(worst, ratio)
                print(
                    f"{mode:<8} ours {describe(r['ours'])}   OpenPGP.js "
                    f"{describe(r['openpgp'])}   ratio {ratio:.2f}   "
                    f"[backend {r['info']['backend']}, WebAssembly {r['info']['webAssembly']}]"
                )
            if not args.no_fallback:
                r = run_mode(playwright, url, [], NO_SUBTLE, args, fallback=True, openpgp=False)
                print(
                    f"no-subtle ours {describe(r['ours'])}   (informative: pure-JS AES-GCM "
                    f"fallback, backend {r['info']['backend']}, JIT on)"
                )
            print(
                f"attachment: a {args.file_mib} MiB File sealed through File.slice, 16 chunks "
                "a request, SHA-256 as it goes; vs PortalCrypto.seal of the bytes in memory "
                f"(best of {args.file_rounds})"
            )
            for mode, (flags, init) in MODES.items():
                r = run_file(playwright, url, flags, init, args)
                best, mem = min(r["streamed"]), min(r["memory"])
                print(
                    f"{mode:<8} file {best / 1000:7.2f} s {rate(args.file_mib, best)}   "
                    f"in memory {mem / 1000:7.2f} s {rate(args.file_mib, mem)}   "
                    f"ratio {best / mem:.2f}   [backend {r['info']['backend']}]"
                )
    verdict = "met" if worst <= 0.5 else "NOT met"
    print(f"goal (ours <= 0.5 x OpenPGP.js in every mode): {verdict}, worst ratio {worst:.2f}")
    print("bundles (portal/static/dist):")
    for line in bundle_sizes():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
