"""The province at 50 % 5xx, 10 % hung requests and 429s together, with the sync service killed
(-9) mid-batch; then a province outage longer than the sender's whole retry budget: the breaker
opens (the summary shows it), the queue waits, and when the province returns every record is held
there exactly once and every accepted claim is credited once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.walkthrough import bearer
from tests.reliability.harness import Cluster, Driver, Workload, call, no_dead_letters
from tests.support import eventually

pytestmark = pytest.mark.e2e
FAULTS = {
    "error_rate": 0.5,
    "timeout_rate": 0.1,
    "hang_s": 1.0,
    "rate_limit_per_s": 1.5,
    "duplicate_receipt_rate": 0.2,
    "seed": 7,
}
OUTAGE_S = 8.0  # the client gives up after 4 tries within ~3 s (timeouts 0.5 s, backoff ≤ 2 s)


def test_province_chaos_then_an_outage_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    cluster = Cluster.start(
        tmp_path / "var",
        {
            "CE_OUTBOX_POLL_S": "0.2",
            "CE_PROVINCE_FAULTS": json.dumps(FAULTS),
            "CE_PROVINCE_TIMEOUT_S": "0.5",
            "CE_PROVINCE_BREAKER_RESET_S": "1",
            "CE_SYNC_RETRY_MAX_S": "2",
            # rows leased by the killed sender come free after this (one sender: no overlap)
            "CE_SYNC_LEASE_S": "5",
        },
    )
    workload = Workload(cluster, persons=3)
    http = httpx.Client(timeout=10)
    ops = bearer(cluster.token("city_admin"))
    sync, province = cluster.url("sync"), cluster.url("province")

    def summary() -> dict[str, Any]:
        r = call(http, "GET", f"{sync}/v1/sync/summary", headers=ops)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    try:
        t0 = time.monotonic()

        def phase(what: str) -> None:
            print(f"RELIABILITY phase {what} at {time.monotonic() - t0:.1f}s")

        workload.setup()
        phase("setup done")
        for k in range(60):  # a backlog of city-platform records for the sender to chew on
            workload.push_learning(k % workload.persons, 10_000 + k)
        driver = Driver(workload, pause_s=0.3).start()
        try:
            # kill the sender while it is in the middle of the backlog
            def mid_batch() -> dict[str, Any] | None:
                now = summary()
                under_way = now["records"].get("registered", 0) >= 10 and now["in_flight"] > 0
                return now if under_way else None

            at_kill = eventually(mid_batch, timeout_s=60, what="the sender mid-batch")
            assert at_kill["pending"] > 0, "the backlog must not be gone before the kill"
            phase("sender under way")
            chaos = call(http, "GET", f"{province}/province/admin/stats").json()
            cluster.kill9("sync")
            time.sleep(0.5)
            cluster.restart("sync")
            time.sleep(2.0)
            # the province goes away for longer than the retry budget
            phase("sync restarted")
            chaos = call(http, "GET", f"{province}/province/admin/stats").json()
            cluster.kill9("province")
            for k in range(10):
                workload.push_learning(k % workload.persons, 20_000 + k)
            breaker = eventually(
                lambda: summary()["circuit_breaker"] != "closed" or None,
                timeout_s=OUTAGE_S,
                what="the breaker open during the outage",
            )
            assert breaker
            time.sleep(OUTAGE_S)
            assert summary()["pending"] > 0  # waiting, not failed
            cluster.env.pop("CE_PROVINCE_FAULTS")  # it comes back healthy
            cluster.restart("province")
            time.sleep(1.0)
        finally:
            driver.stop()
        phase("province back")
        ledger = workload.converge(timeout_s=120)
        phase("converged")
        ledger.assert_exact()
        stats = call(http, "GET", f"{province}/province/admin/stats").json()
        final = summary()
        assert final["failed"] == 0 and final["pending"] == 0, final
        assert no_dead_letters(cluster) == dict.fromkeys(
            ("claims", "review", "registry", "sync"), 0
        )
        assert stats["records"] == ledger.registered, stats
        injected = (
            "province 50% 5xx + 10% hung (1 s, client timeout 0.5 s) + 429 over 1.5 req/s "
            "+ 20% responses lost after the commit; "
            f"sync killed -9 mid-batch; province killed for {OUTAGE_S:.0f} s (> retry budget)"
        )
        ledger.report("province chaos", injected)
        print(
            f"RELIABILITY sync at the kill: in flight {at_kill['in_flight']}, "
            f"pending {at_kill['pending']}"
        )
        print(f"RELIABILITY province faults before the outage: {json.dumps(chaos)}")
        # the faults were injected in earnest
        assert chaos["errors"] > 0 and chaos["timeouts"] > 0 and chaos["rate_limited"] > 0, chaos
    finally:
        http.close()
        workload.close()
        cluster.stop()
