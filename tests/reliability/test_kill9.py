"""kill -9 of each service in turn while claims, decisions and learning records flow; each is
restarted; in the end every accepted claim is approved once, credited once and held once by the
province (0 lost, 0 duplicated), and no event was dead-lettered by a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ce.topology import SERVICES
from tests.reliability.harness import Cluster, Driver, Workload, no_dead_letters

pytestmark = pytest.mark.e2e


def test_kill_9_of_each_service_in_turn_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path / "var", {"CE_OUTBOX_POLL_S": "0.2"})
    workload = Workload(cluster, persons=4)
    try:
        workload.setup()
        driver = Driver(workload).start()
        try:
            for name in SERVICES:
                time.sleep(1.5)  # let work pile up in every stage
                cluster.kill9(name)
                time.sleep(0.5)
                cluster.restart(name)
            time.sleep(1.0)
        finally:
            driver.stop()
        ledger = workload.converge()
        ledger.assert_exact()
        assert no_dead_letters(cluster) == dict.fromkeys(SERVICES, 0)
        ledger.report("kill -9", f"SIGKILL of {', '.join(SERVICES)} in turn, each restarted")
    finally:
        workload.close()
        cluster.stop()
