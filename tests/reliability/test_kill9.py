"""kill -9 of each service in turn while claims, decisions and learning records flow; each is
restarted; in the end every accepted claim is approved once, credited once and held once by the
province (0 lost, 0 duplicated), and no event was dead-lettered by a crash.

On both runtimes: the embedded one (SQLite files, the embedded durable log) and the distributed
one (each service on its own PostgreSQL database, the Kafka-protocol broker of the test run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ce.topology import SERVICES
from tests.fixtures.broker import Broker
from tests.reliability.harness import Cluster, Driver, Workload, no_dead_letters

pytestmark = pytest.mark.e2e


def _kill_each_in_turn(cluster: Cluster, runtime: str) -> None:
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
        ledger.report(
            f"kill -9 ({runtime})", f"SIGKILL of {', '.join(SERVICES)} in turn, each restarted"
        )
    finally:
        workload.close()
        cluster.stop()


def test_kill_9_of_each_service_in_turn_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path / "var", {"CE_OUTBOX_POLL_S": "0.2"})
    _kill_each_in_turn(cluster, "embedded")


@pytest.mark.kafka
@pytest.mark.postgres
def test_kill_9_on_postgresql_and_kafka_loses_and_duplicates_nothing(
    tmp_path: Path, kafka_broker: Broker, make_pg_database: Callable[[str], str]
) -> None:
    cluster = Cluster.start(
        tmp_path / "var",
        {
            "CE_OUTBOX_POLL_S": "0.2",
            "CE_BUS": "kafka",
            "CE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
            "CE_KAFKA_IDEMPOTENCE": "false",  # the test broker has no InitProducerId
            "CE_KAFKA_SEND_TIMEOUT_S": "3",
            "CE_KAFKA_FETCH_MAX_WAIT_MS": "50",  # Tansu holds a fetch for all of it
            # a sender killed between leasing rows and booking them leaves them leased
            "CE_SYNC_LEASE_S": "10",
        },
        {name: {"CE_DATABASE_URL": make_pg_database(f"k9_{name}")} for name in SERVICES},
        start_timeout_s=180.0,  # four services migrating PostgreSQL databases on 2 busy cores
    )
    _kill_each_in_turn(cluster, "PostgreSQL + Kafka")
