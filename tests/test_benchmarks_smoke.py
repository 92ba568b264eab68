"""Smoke test of the benchmark suite (issue 6): the quick run completes and writes its report.

It asserts only that ``python -m benchmarks --quick`` finishes and produces BENCHMARKS.md with
every benchmark's section and the PNG plots — never a duration or a target verdict: timings on
a shared CI machine are not a test result. It runs on the suite's primary PostgreSQL server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ["## Machine", "## Targets (issue 6)", "## 1. Online stall", "## 2. Lock queue", "## 3. Backfill",
            "## 4. Apply overhead", "## 5. Generation", "## 6. Seed data",
            "## 7. Every operation under the writer", "## 8. Online rename under the writer",
            "## 9. AlterColumnType"]
PLOTS = ["stall.png", "lock_queue.png", "backfill.png", "overhead.png", "op_stalls.png"]


def test_quick_benchmark_run_writes_its_report(pg_server, tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--dsn", pg_server.admin_dsn, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"

    report = (out / "BENCHMARKS.md").read_text()
    for section in SECTIONS:
        assert section in report, f"BENCHMARKS.md lacks {section!r}"
    for name in PLOTS:
        data = (out / "benchmarks" / "plots" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{name} is not a PNG"

    with pg_server.connect() as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbdeploy\\_bench\\_%%'"
                            " AND split_part(datname, '_', 3) = %s", [str(_child_pid(proc))]).fetchall()
    assert left == [], f"the benchmark left databases behind: {left}"


def _child_pid(proc: subprocess.CompletedProcess) -> int:
    """The benchmark process's pid, as its first log line states it (its databases carry it)."""
    match = re.search(r"\(pid (\d+)\)", proc.stdout)
    assert match, "the benchmark did not log its pid"
    return int(match.group(1))


def test_quick_rename_benchmark_writes_its_section(pg_server, tmp_path):
    """Benchmark 8 alone (``--only rename``): it completes, every contender ends in its schema
    (checked inside the run) and the report has the section. No duration is asserted."""
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "rename", "--dsn", pg_server.admin_dsn,
         "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    report = (out / "BENCHMARKS.md").read_text()
    assert "## 8. Online rename under the writer" in report
    assert "dbdeploy RenameColumn(online=True)" in report and "hand-written expand script" in report
