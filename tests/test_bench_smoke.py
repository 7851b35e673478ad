"""The benchmark in smoke mode: every workload tiny, so `just bench` never rots.

It starts real processes (receiver, load client, Sanic, huey, mininq) and
checks the run completes and prints its table; the figures themselves are
too small to mean anything and are not asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_smoke_completes_and_leaves_docs_alone(tmp_path: Path) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    doc_before = doc.read_bytes() if doc.exists() else None
    out = tmp_path / "bench.md"

    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--from-source", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )

    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report
    assert "| Workload | Figure | Value |" in proc.stdout, report
    for figure in ("Sanic alone", "SQLite alone", "W1 | end-to-end", "W1b | end-to-end",
                   "201 → arrival p99", "lateness p99", "GET /jobs?status=pending",
                   "idle CPU", "RSS right after W1", "healthy rate beside a hanging one"):
        assert figure in proc.stdout, f"{figure!r} missing from the table\n{report}"
    text = out.read_text()
    assert "## Machine" in text and "| Workload |" in text, text
    assert (doc.read_bytes() if doc.exists() else None) == doc_before, \
        "smoke mode must not rewrite docs/benchmarks.md"


def test_cpu_diagnostic_reports_each_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cpu", "--jobs", "300", "--from-source"],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report
    assert "enqueue: 300 single POSTs" in proc.stdout, report
    assert "HTTP worker" in proc.stdout and "'event loop'" in proc.stdout, report
    assert "drain: 300 jobs delivered" in proc.stdout, report
    assert "engine" in proc.stdout, report
