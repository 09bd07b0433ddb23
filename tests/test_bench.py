"""The benchmarks still run and print their figures (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

from portal.config import PROJECT_ROOT


def test_desk_decrypt_benchmark_runs_and_prints_its_comparison() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/desk_decrypt.py", "--size-mib", "2", "--reports", "20",
         "--repeat", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for figure in ("portal-desk decrypt", "x the rate of cp", "reports/s", "peak RSS MiB"):
        assert figure in proc.stdout
