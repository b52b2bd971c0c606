"""PostgreSQL unreachable under load: the claims and sync databases sit behind a TCP proxy that is
cut for longer than a pool checkout (every connection dropped, new ones refused), then restored,
while claims, decisions and learning records flow. The shared server itself is never restarted.
In the end every accepted claim is approved once, credited once and held once by the province."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.postgres import PG_HOST, PG_PORT
from tests.reliability.harness import Cluster, Driver, Workload, settle_exactly_once
from tests.reliability.tcpproxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
CUT_S = 5.0


def test_a_database_outage_under_load_loses_and_duplicates_nothing(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    proxy = TcpProxy(PG_HOST, PG_PORT).start()
    urls = {
        name: make_pg_database(f"cut_{name}").replace(
            f"{PG_HOST}:{PG_PORT}", f"127.0.0.1:{proxy.port}"
        )
        for name in ("claims", "sync")
    }
    cluster = Cluster.start(
        tmp_path / "var",
        # a sender that loses its database between claiming rows and booking them leaves them
        # leased: they come free after the lease (60 s by default)
        {"CE_OUTBOX_POLL_S": "0.2", "CE_SYNC_LEASE_S": "10"},
        {name: {"CE_DATABASE_URL": url} for name, url in urls.items()},
    )
    workload = Workload(cluster, persons=3)
    try:
        workload.setup()
        driver = Driver(workload).start()
        try:
            time.sleep(3.0)
            proxy.cut()
            time.sleep(CUT_S)
            proxy.restore()
            time.sleep(2.0)
        finally:
            driver.stop()
        settle_exactly_once(
            cluster,
            workload,
            "database outage",
            f"claims and sync PostgreSQL connections cut for {CUT_S:.0f} s under load (TCP proxy)",
        )
    finally:
        workload.close()
        cluster.stop()
        proxy.stop()
