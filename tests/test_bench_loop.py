"""The desk-loop benchmark still runs both loops and prints its figures (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys

from portal.config import PROJECT_ROOT


def test_loop_benchmark_runs_every_stage_and_prints_its_comparisons() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/loop.py", "--reports", "20", "--attachments", "6",
         "--attachment-mib", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    reports, attachments = out.split("== 6 attachments of 1 MiB ==")
    assert "== 20 reports ==" in reports
    for part, unit in ((reports, "items/s"), (attachments, "MB/s")):
        for stage in ("1 export", "2 portal-desk import", "3 portal-desk return", "4 purge"):
            assert stage in part
        for figure in ("seconds", unit, "peak MiB"):
            assert figure in part
        for comparison in ("x the time of a plain tarfile", "x the time of unlinking"):
            assert comparison in part
        assert "0 files in the envelope directory, 0 rows in submissions" in part
    assert "x the time of envelope.open_bytes on each file" in reports
    assert "x the time of envelope.open_stream on each file" in attachments
    assert "stored them with 2 reports listing them" in attachments
    assert "the desk wrote all 6 files, each with the SHA-256 its report lists" in attachments
    assert "peak memory per stage, same run (MiB): small reports vs attachments" in out
