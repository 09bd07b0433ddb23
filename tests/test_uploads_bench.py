"""The upload memory benchmark still runs both paths on a real server (tiny sizes, no timing)."""

from __future__ import annotations

import subprocess
import sys

from portal.config import PROJECT_ROOT


def test_upload_memory_benchmark_runs_both_paths_and_prints_its_comparison() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/upload_memory.py", "--sizes-mib", "2", "4"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for path in ("resumable", "no-javascript"):
        assert f"{path}: peak above idle for 4 MiB is" in out
        assert len([line for line in out.splitlines() if line.startswith(path + " ")]) == 2
    assert "above idle" in out and "MiB/s" in out
