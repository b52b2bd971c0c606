"""The province misbehaves (5xx, hung requests, lost responses): every record still ends up
registered there exactly once, through the real sync service and simulator processes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from libs.common.idnumber import check_character
from tests.e2e.stack import start_embedded
from tests.e2e.walkthrough import bearer
from tests.support import eventually

pytestmark = pytest.mark.e2e
FAULTS = {
    "error_rate": 0.3,
    "timeout_rate": 0.1,
    "duplicate_receipt_rate": 0.3,
    "hang_s": 1.5,
    "seed": 20261126,
}


def test_records_register_exactly_once_through_province_faults(tmp_path: Path) -> None:
    people = [f"37040219900101{i}12" for i in range(3)]
    people = [p + check_character(p) for p in people]
    records = [
        {
            "record_id": f"zzzj-fault-{n:03d}",
            "id_number": people[n % 3],
            "year": 2026,
            "subject": "public" if n % 2 else "professional",
            "hours": 2.5,
            "course": f"课程 {n}",
            "completed_at": "2026-06-01T10:00:00+08:00",
        }
        for n in range(30)
    ]
    stack = start_embedded(
        tmp_path / "var",
        {"CE_PROVINCE_FAULTS": json.dumps(FAULTS), "CE_PROVINCE_TIMEOUT_S": "0.5"},
    )
    try:
        stack.wait_healthy()
        system = bearer(stack.token("system"))
        city = bearer(stack.token("city_admin"))
        with stack.client(timeout=30) as http:
            for record in records:  # one push each, so the sender makes many requests
                r = http.post(
                    f"{stack.url('sync')}/v1/learning-records",
                    headers=system,
                    json={"records": [record]},
                )
                assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
                time.sleep(0.1)

            def all_registered() -> dict[str, Any] | None:
                summary = http.get(f"{stack.url('sync')}/v1/sync/summary", headers=city).json()
                return summary if summary["records"].get("registered") == 30 else None

            eventually(all_registered, timeout_s=120, what="30 records registered")
            stats = http.get(f"{stack.url('province')}/province/admin/stats").json()
            assert stats["errors"] > 0 and stats["duplicate_receipts"] > 0, stats
            assert stats["records"] == 30, stats  # resent many times, stored once each
            cleared = http.put(f"{stack.url('province')}/province/admin/faults", json={})
            assert cleared.status_code == 200  # read the truth back without faults
            for i, id_number in enumerate(people):
                hours = http.get(
                    f"{stack.url('province')}/province/v1/persons/{id_number}/hours",
                    params={"year": 2026},
                ).json()
                mine = [rec for n, rec in enumerate(records) if n % 3 == i]
                assert len(hours["records"]) == len(mine)
                assert hours["public"] + hours["professional"] == 2.5 * len(mine)
    finally:
        codes = stack.stop()
    assert codes == [0], stack.tail()
