"""PostgreSQL restarted under load: claims, review and sync (every service the workload goes
through; registry keeps its SQLite file) each on its own database of one PostgreSQL server (a
cluster of this test's own), the server stopped (``pg_ctl stop -m fast``: every session
terminated, every new connection refused) for seconds and started again, while claims, decisions
and learning records flow. In the end every accepted claim is approved once, credited once and
held once by the province; no event was dead-lettered by the restart.

test_database_outage.py cuts the network to the shared server instead; this one restarts a real
server, so the services also meet a shutting-down server ("the database system is shutting
down", "terminating connection due to administrator command") and one starting up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.private_postgres import PrivatePostgres
from tests.reliability.harness import Cluster, Driver, Workload, settle_exactly_once

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
DOWN_S = 4.0
ON_POSTGRES = ("claims", "review", "sync")


def test_a_postgresql_restart_under_load_loses_duplicates_and_dead_letters_nothing(
    tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    server = private_postgres
    for name in ON_POSTGRES:
        server.psql(f'CREATE DATABASE "{name}"')
    cluster = Cluster.start(
        tmp_path / "var",
        # a sender that loses its database between leasing rows and booking them leaves them
        # leased: they come free after the lease (60 s by default)
        {"CE_OUTBOX_POLL_S": "0.2", "CE_SYNC_LEASE_S": "10"},
        {name: {"CE_DATABASE_URL": server.url(name)} for name in ON_POSTGRES},
        start_timeout_s=120.0,  # services migrating their databases on busy cores
    )
    workload = Workload(cluster, persons=3)
    try:
        workload.setup()
        driver = Driver(workload).start()
        try:
            time.sleep(3.0)
            before = driver.rounds
            stopped = time.monotonic()
            server.stop("fast")
            time.sleep(DOWN_S)
            server.start()
            downtime = time.monotonic() - stopped
            time.sleep(2.0)
        finally:
            driver.stop()
        assert before > 0, "nothing flowed before the restart"
        settle_exactly_once(
            cluster,
            workload,
            "database restart",
            f"the PostgreSQL server of {', '.join(ON_POSTGRES)} stopped (pg_ctl stop -m fast) "
            f"and started again under load, down {downtime:.1f} s",
        )
        for name in ON_POSTGRES:  # the restart reached each: its relay's session was terminated
            log = (cluster.stack.data_dir / f"{name}.log").read_text(errors="replace")
            assert "outbox relay lost its leader connection" in log, name
        assert driver.rounds > before, "the workload went on after the restart"
    finally:
        workload.close()
        cluster.stop()
