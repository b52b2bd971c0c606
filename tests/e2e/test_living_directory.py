"""Issue 8 end to end, on both runtimes: an imported directory of 500 orgs routes claims; a
transferred person's open claim is decided by the new unit and not the old; the district sees its
units' queues; a history row edited in the database is detected; a deactivated unit's admin reads
nothing more (issue 17)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.review.tests.support import csv_bytes, directory_of
from tests.e2e.stack import Stack, start_distributed, start_embedded
from tests.e2e.walkthrough import (
    ID_NUMBER,
    PDF,
    World,
    bearer,
    open_task,
    register_person,
    submit_training,
)
from tests.fixtures.broker import Broker
from tests.support import eventually

pytestmark = pytest.mark.e2e

FORGE = "UPDATE review_history SET actor = 'unit_admin:forged' WHERE claim_id = $1 AND seq = 2"


def living_directory(stack: Stack, forge: Callable[[str], None]) -> float:
    """The scenario; returns the seconds the 500-org import took."""
    city = bearer(stack.token("city_admin"))
    review, claims = stack.url("review"), stack.url("claims")
    tag = f"E{uuid.uuid4().hex[:6]}"
    with stack.client(timeout=60) as http:
        started = time.perf_counter()
        r = http.post(
            f"{review}/v1/orgs/import",
            files={"file": ("orgs.csv", csv_bytes(directory_of(500, tag, ""), "gbk"))},
            headers=city,
        )
        elapsed = time.perf_counter() - started
        assert r.status_code == 200 and r.json()["created"] == 500, r.text
        ids = {row["code"]: row["id"] for row in r.json()["rows"]}
        old_unit, new_unit = ids[f"{tag}-U1"], ids[f"{tag}-U2"]  # under D1 and D2
        old_admin = stack.token("unit_admin", org_id=old_unit)
        new_admin = stack.token("unit_admin", org_id=new_unit)
        new_district = stack.token("district_admin", org_id=ids[f"{tag}-D2"])

        person_id = register_person(stack, http, old_admin, old_unit, ID_NUMBER)
        world = World(
            district_id=ids[f"{tag}-D1"],
            unit_id=old_unit,
            person_id=person_id,
            unit_admin=old_admin,
            district_admin=stack.token("district_admin", org_id=ids[f"{tag}-D1"]),
            personnel=stack.token("personnel", person_id=person_id),
        )
        claim = submit_training(stack, http, world, "急诊医学新进展培训班")
        waiting = submit_training(
            stack,
            http,
            world,
            "院感防控培训",
            pdf=PDF.replace(b"trailer", b"%second\ntrailer"),
            start_date="2026-11-09",
            end_date="2026-11-10",
        )
        old_task = open_task(stack, http, old_admin, claim["id"], "unit")
        open_task(stack, http, old_admin, waiting["id"], "unit")

        def transfer() -> httpx.Response | None:
            # claims learns of the imported unit from org.upserted, asynchronously
            r = http.post(
                f"{claims}/v1/persons/{person_id}/transfer",
                headers=city,
                json={"affiliation": {"kind": "unit", "org_id": new_unit}},
            )
            return None if r.status_code == 422 and r.json().get("code") == "unknown_org" else r

        moved = eventually(transfer, what="claims knows the new unit")
        assert moved.status_code == 200, moved.text
        new_task = open_task(stack, http, new_admin, claim["id"], "unit")
        assert new_task == old_task  # the same task, moved
        refused = http.post(
            f"{review}/v1/review-tasks/{old_task}/decision",
            headers=bearer(old_admin),
            json={"decision": "approve"},
        )
        assert refused.status_code == 404 and refused.json()["code"] == "task_not_found"
        for token, stage in ((new_admin, "unit"), (new_district, "authority")):
            task = open_task(stack, http, token, claim["id"], stage)
            r = http.post(
                f"{review}/v1/review-tasks/{task}/decision",
                headers=bearer(token),
                json={"decision": "approve"},
            )
            assert r.status_code == 200, r.text

        def approved() -> dict[str, Any] | None:
            r = http.get(f"{claims}/v1/claims/{claim['id']}", headers=bearer(world.personnel))
            return r.json() if r.json()["status"] == "approved" else None

        eventually(approved, what="claim approved")

        queues = http.get(
            f"{review}/v1/review-queues",
            params={"org_id": ids[f"{tag}-D2"]},
            headers=bearer(new_district),
        )
        assert queues.status_code == 200, queues.text
        by_org = {o["org_id"]: o for o in queues.json()["orgs"]}
        assert by_org[new_unit]["open"] == {"unit": 1, "authority": 0}
        assert by_org[new_unit]["oldest_age_working_days"] == 0
        assert by_org[new_unit]["overdue"] == 0

        history = http.get(f"{review}/v1/claims/{claim['id']}/history", headers=city).json()
        assert history["verified"] is True
        steps = [(s["decision"], s["from_org_id"], s["org_id"]) for s in history["steps"]]
        assert ("moved", old_unit, new_unit) in steps
        verify = http.get(f"{review}/v1/admin/history/verify", headers=city).json()
        assert verify["broken"] == []
        forge(claim["id"])
        verify = http.get(f"{review}/v1/admin/history/verify", headers=city).json()
        assert verify["broken"] == [{"claim_id": claim["id"], "step": 2}]
        history = http.get(f"{review}/v1/claims/{claim['id']}/history", headers=city).json()
        assert history["verified"] is False
        deactivated_unit_reads_nothing(stack, http, new_unit, new_admin, person_id)
    return elapsed


def deactivated_unit_reads_nothing(
    stack: Stack, http: httpx.Client, unit: str, admin: str, person_id: str
) -> None:
    """Issue 17, finding 4: review deactivates the unit; once org.upserted reaches claims (the
    service's own process, over the embedded log or Kafka) its admin's token reads no person
    and no task any more: 403 org_inactive in both services."""
    claims, review = stack.url("claims"), stack.url("review")
    person = f"{claims}/v1/persons/{person_id}"
    assert http.get(person, headers=bearer(admin)).status_code == 200
    r = http.patch(
        f"{review}/v1/orgs/{unit}",
        json={"active": False},
        headers=bearer(stack.token("city_admin")),
    )
    assert r.status_code == 200, r.text

    def refused() -> httpx.Response | None:
        r = http.get(person, headers=bearer(admin))
        return r if r.status_code != 200 else None

    r = eventually(refused, what="claims knows the unit is deactivated")
    assert r.status_code == 403 and r.json()["code"] == "org_inactive", r.text
    r = http.get(f"{review}/v1/review-tasks", headers=bearer(admin))
    assert r.status_code == 403 and r.json()["code"] == "org_inactive", r.text


def cli_import_orgs(stack: Stack, tmp_path: Path) -> None:
    """``ce import-orgs FILE``: all or nothing, re-runnable, bad rows named by line."""
    tag = f"C{uuid.uuid4().hex[:6]}"
    good = tmp_path / "orgs.csv"
    good.write_bytes(csv_bytes(directory_of(12, tag, ""), "gbk"))
    review = ["--url", stack.url("review")]
    first = stack.ce("import-orgs", str(good), *review)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"created": 12, "updated": 0, "unchanged": 0}
    again = stack.ce("import-orgs", str(good), *review)
    assert json.loads(again.stdout) == {"created": 0, "updated": 0, "unchanged": 12}
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        csv_bytes([(f"{tag}-X", "x", "unit", f"{tag}-NOPE"), (f"{tag}-Y", "y", "district", "")])
    )
    refused = stack.ce("import-orgs", str(bad), *review)
    assert refused.returncode == 1
    assert "import_rejected" in refused.stderr
    assert refused.stdout.startswith(f"line 2 ({tag}-X): unknown_parent_code:")
    assert f"{tag}-Y" not in refused.stdout


def test_living_directory_embedded(tmp_path: Path) -> None:
    stack = start_embedded(tmp_path / "var")

    def forge(claim_id: str) -> None:
        with sqlite3.connect(stack.data_dir / "review.db") as db:
            db.execute(FORGE.replace("$1", "?"), (claim_id,))

    try:
        stack.wait_healthy()
        print(f"\nembedded: import of 500 orgs {living_directory(stack, forge):.2f}s")
        cli_import_orgs(stack, tmp_path)
    finally:
        codes = stack.stop()
    assert codes == [0], stack.tail()


@pytest.mark.postgres
@pytest.mark.kafka
def test_living_directory_distributed(
    tmp_path: Path, make_pg_database: Callable[[str], str], kafka_broker: Broker
) -> None:
    urls = {name: make_pg_database(name) for name in ("claims", "review", "registry", "sync")}
    stack = start_distributed(tmp_path / "var", urls, kafka_broker.bootstrap)

    def forge(claim_id: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(urls["review"].replace("postgresql+asyncpg", "postgresql"))
            try:
                await conn.execute(FORGE, claim_id)
            finally:
                await conn.close()

        asyncio.run(run())

    try:
        stack.wait_healthy(timeout_s=90)
        print(f"\ndistributed: import of 500 orgs {living_directory(stack, forge):.2f}s")
    finally:
        codes = stack.stop()
    assert all(c == 0 for c in codes), stack.tail()
