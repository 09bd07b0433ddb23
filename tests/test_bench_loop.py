"""The desk-loop benchmark still runs the whole loop and prints its figures (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys

from portal.config import PROJECT_ROOT


def test_loop_benchmark_runs_every_stage_and_prints_its_comparisons() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/loop.py", "--reports", "20"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for stage in ("1 export", "2 portal-desk import", "3 portal-desk return", "4 purge"):
        assert stage in out
    for figure in ("seconds", "items/s", "peak MiB", "files/s"):
        assert figure in out
    for comparison in (
        "x the time of a plain tarfile",
        "x the time of envelope.open_bytes",
        "x the time of unlinking",
    ):
        assert comparison in out
    assert "waits for the attachments issue (#4)" in out
    assert "0 files in the envelope directory, 0 rows in submissions" in out
