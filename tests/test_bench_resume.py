"""``bench/resume.py`` still drives the real client through cut connections and prints figures.

No timing is asserted; the run must end with the file whole on the server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_resume_benchmark_runs_and_the_file_arrives_whole() -> None:
    if not (ROOT / "portal" / "static" / "dist" / "form.js").is_file():
        pytest.fail("the browser bundles are missing: run `make js`")
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium")
    proc = subprocess.run(
        [sys.executable, "bench/resume.py", "--size-mib", "3", "--cuts", "2", "--seed", "7"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "2 cuts at random points" in out
    assert "bytes sent twice:" in out and "per interruption:" in out
    assert "goal (at most one upload request sent twice per interruption):" in out
    assert "the server holds the file whole (SHA-256 checked with the demo key): True" in out
