"""The benchmarks keep working as the code changes: ``bench.run --quick`` must finish cleanly.
(Figures are read from ``make bench``, never asserted here.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.subprocess
def test_quick_benchmark_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(tmp_path / "out.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "out.json").exists()
    for case in (
        "eventlog.publish",
        "rules.assess",
        "http.submit_claim",
        "system.learning_ingest",
        "system.submit_claim_32.p99",
        "system.event_latency.p99",
        "system.approval_latency.p99",
        "system.report_csv",
        "console.queue_page_p99",
        "console.task_page_p99",
    ):
        assert case in result.stdout
