"""A broker outage on the distributed runtime: claims keep being accepted (the outbox holds their
events), and once the broker is back every event arrives and none is applied twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import pytest

from tests.e2e.stack import start_distributed
from tests.e2e.walkthrough import PDF, bearer, setup_world, submit_training
from tests.fixtures.broker import Broker
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.kafka]
CLAIMS = 6


def test_claims_submitted_during_a_broker_outage_arrive_once(
    tmp_path: Path,
    make_pg_database: Callable[[str], str],
    kafka_broker: Broker,
) -> None:
    urls = {name: make_pg_database(name) for name in ("claims", "review", "registry", "sync")}
    stack = start_distributed(tmp_path / "var", urls, kafka_broker.bootstrap)
    try:
        stack.wait_healthy(timeout_s=90)
        with stack.client(timeout=30) as http:
            world = setup_world(stack, http, suffix="-outage")
            city = bearer(stack.token("city_admin"))
            claim_ids = []
            kafka_broker.pause()
            try:
                for i in range(CLAIMS):
                    # two days of its own each: one person's 8 hours a day hold across claims
                    start = date(2026, 2, 2) + timedelta(days=2 * i)
                    claim = submit_training(
                        stack,
                        http,
                        world,
                        f"停机期间的培训 {i}",
                        pdf=PDF + f"%{i}\n".encode(),
                        start_date=start.isoformat(),
                        end_date=(start + timedelta(days=1)).isoformat(),
                    )
                    claim_ids.append(claim["id"])
                pending = http.get(f"{stack.url('claims')}/v1/admin/dead-letters", headers=city)
                assert pending.json()["outbox_pending"] >= 1
            finally:
                kafka_broker.resume()

            def tasks_for(claim_id: str) -> list[dict[str, object]]:
                r = http.get(
                    f"{stack.url('review')}/v1/review-tasks",
                    params={"claim_id": claim_id},
                    headers=bearer(world.unit_admin),
                )
                return list(r.json()["items"])

            for claim_id in claim_ids:
                eventually(partial(tasks_for, claim_id), timeout_s=90, what=f"task {claim_id}")
            eventually(
                lambda: (
                    http.get(f"{stack.url('claims')}/v1/admin/dead-letters", headers=city).json()[
                        "outbox_pending"
                    ]
                    == 0
                ),
                timeout_s=60,
                what="outbox drained",
            )
            for claim_id in claim_ids:
                assert len(tasks_for(claim_id)) == 1  # none applied twice
                history = http.get(
                    f"{stack.url('review')}/v1/claims/{claim_id}/history",
                    headers=bearer(world.unit_admin),
                ).json()
                assert [s["decision"] for s in history["steps"]] == ["submitted"]
    finally:
        codes = stack.stop()
    assert all(c == 0 for c in codes), stack.tail()
