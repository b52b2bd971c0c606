"""``POST /v1/persons/batch``: up to 1,000 rows registered in one transaction, each row on its
own (per-row status and problem code), idempotent per row (a re-sent row answers 200 with the
person registered the first time), scope checked per org; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from libs.common.events import Envelope, LearningRecorded, topic_of
from services.claims.tests.harness import (
    CLOCK,
    Stack,
    claims_stack,
    id_number,
    with_bad_checksum,
)
from tests.support import assert_problem

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow


def _row(n: int, org_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "id_number": id_number(n),
        "name": f"职工{n}",
        "phone": None,
        "affiliation": {"kind": "unit", "org_id": org_id},
        **overrides,
    }


async def _batch(stack: Stack, rows: list[dict[str, Any]], **auth: str) -> dict[str, Any]:
    headers = stack.auth(**auth) if auth else stack.city
    r = await stack.http.post("/v1/persons/batch", json={"persons": rows}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _scenario(stack: Stack) -> None:
    district = await stack.add_org("district")
    unit = await stack.add_org("unit", district)
    other = await stack.add_org("unit")
    waiting = LearningRecorded(
        record_id="city-batch-1",
        id_number=id_number(7),
        year=2026,
        subject="public",
        hours=4,
        course="公需课",
        completed_at="2026-03-01T00:00:00Z",  # type: ignore[arg-type]
    )
    envelope = await stack.publish(topic_of("sync"), waiting, subject="k")
    assert isinstance(envelope, Envelope)

    rows = [_row(n, unit) for n in range(1, 999)]
    rows[3] = _row(4, unit, id_number=with_bad_checksum(id_number(4)))
    rows[5] = _row(6, "no-such-org")
    rows[8] = _row(9, unit, affiliation={"kind": "agency", "org_id": unit})
    rows[12] = _row(13, unit, name="")  # fails the schema: that row only
    rows.append(dict(rows[10]))  # the same row twice: one person
    rows.append(_row(11, unit, name="别人"))  # the same ID number, someone else: refused
    body = await _batch(stack, rows)
    assert (body["registered"], body["existing"], body["refused"]) == (994, 1, 5)
    codes = {r["row"]: r["code"] for r in body["results"] if r["status"] >= 400}
    assert codes == {
        3: "invalid_id_number",
        5: "unknown_org",
        8: "affiliation_mismatch",
        12: "validation_error",
        999: "duplicate_person",
    }
    assert [r["row"] for r in body["results"]] == list(range(len(rows)))
    twice = body["results"][10]["person"]
    # registered at the service's clock (pinned), not the machine's
    assert {datetime.fromisoformat(r["person"]["created_at"]) for r in body["results"][:3]} == {
        CLOCK
    }
    assert body["results"][998] == {**body["results"][998], "status": 200, "person": twice}

    # the person with a waiting city-platform record has it on the transcript now
    seventh = body["results"][6]["person"]
    r = await stack.http.get(f"/v1/persons/{seventh['id']}/transcripts/2026", headers=stack.city)
    assert [e["ref"] for e in r.json()["entries"]] == ["city-batch-1"]
    # every registration is announced, once
    registered = [e for e in await stack.outbox() if e.type == "person.registered"]
    assert len(registered) == 994

    # a re-run: every row that went in answers 200 with the same person, nothing new
    again = await _batch(stack, rows)
    assert (again["registered"], again["existing"], again["refused"]) == (0, 995, 5)
    assert again["results"][10]["person"] == twice
    assert len([e for e in await stack.outbox() if e.type == "person.registered"]) == 994

    # scope: a unit admin of another unit registers nobody here, its own unit's rows go in
    mixed = [_row(2001, unit), _row(2002, other)]
    scoped = await _batch(stack, mixed, role="unit_admin", org=other)
    assert [(r["status"], r["code"]) for r in scoped["results"]] == [
        (403, "outside_scope"),
        (201, None),
    ]
    r = await stack.http.post(
        "/v1/persons/batch",
        json={"persons": [_row(3000, unit)]},
        headers=stack.auth("personnel", sub="self-1"),
    )
    assert_problem(r, 403, "outside_scope")
    r = await stack.http.post(
        "/v1/persons/batch",
        json={"persons": [_row(n, unit) for n in range(1001)]},
        headers=stack.city,
    )
    assert r.status_code == 422


async def test_persons_in_bulk_on_sqlite(tmp_path: Path) -> None:
    async with claims_stack(tmp_path) as stack:
        await _scenario(stack)


@pytest.mark.postgres
async def test_persons_in_bulk_on_postgres(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    url = await asyncio.to_thread(make_pg_database, "claims_batch")
    async with claims_stack(tmp_path, url) as stack:
        await _scenario(stack)
