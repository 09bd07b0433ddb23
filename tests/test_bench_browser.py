"""``bench/browser_crypto.py`` still runs in real Chromium and prints its figures.

No timing is asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_browser_crypto_benchmark_runs_in_every_mode() -> None:
    if not (ROOT / "node_modules" / "openpgp").is_dir():
        pytest.fail("node_modules is missing: run `npm ci`")
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium")
    proc = subprocess.run(
        [sys.executable, "bench/browser_crypto.py", "--size-mib", "1", "--rounds", "1",
         "--file-mib", "2", "--file-rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for mode in ("normal", "no-wasm", "jitless"):
        line = next(x for x in lines if x.startswith(mode + " "))
        assert "OpenPGP.js" in line and "ratio" in line
        assert "backend webcrypto" in line
    assert any(x.startswith("no-subtle") and "backend noble" in x for x in lines)
    no_wasm = next(x for x in lines if x.startswith("no-wasm "))
    assert "WebAssembly undefined" in no_wasm
    assert "goal (ours <= 0.5 x OpenPGP.js in every mode)" in proc.stdout
    assert "crypto.js" in proc.stdout and "gzipped" in proc.stdout
    # The attachment lines: a 2 MiB File sealed through File.slice in each mode.
    assert "attachment: a 2 MiB File sealed through File.slice" in proc.stdout
    for mode in ("normal", "no-wasm", "jitless"):
        line = next(x for x in lines if x.startswith(mode + " ") and " file " in x)
        assert "in memory" in line and "ratio" in line and "backend webcrypto" in line
