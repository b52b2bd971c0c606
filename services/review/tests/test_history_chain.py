"""The tamper-evident history: each step hashes its content and the previous step's hash. Rows
edited, deleted or inserted straight in the database (as an insider with SQL access would) are
detected by GET /v1/claims/{id}/history (``verified: false``) and by GET /v1/admin/history/verify,
which names the claim and its first broken step."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from services.review.history import GENESIS, step_hash
from services.review.models import HistoryEntry
from services.review.tests.support import Review
from tests.support import assert_problem


async def decided_claim(review: Review) -> str:
    """A claim with four steps: submitted, unit approve, authority reject, resubmitted."""
    claim_id = await review.submit("U1")
    assert (await review.decide(await review.open_task(claim_id), "U1")).status_code == 200
    r = await review.decide(await review.open_task(claim_id), "D1", "reject", "证书不清晰")
    assert r.status_code == 200
    await review.submit("U1", revision=2, claim_id=claim_id)
    return claim_id


async def chain(review: Review, claim_id: str) -> dict[str, Any]:
    r = await review.http.get(f"/v1/claims/{claim_id}/history", headers=review.city)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def verify(review: Review) -> dict[str, Any]:
    r = await review.http.get("/v1/admin/history/verify", headers=review.city)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def broken_step(review: Review, claim_id: str) -> int | None:
    found = [b["step"] for b in (await verify(review))["broken"] if b["claim_id"] == claim_id]
    return found[0] if found else None


async def execute(review: Review, statement: Any) -> None:
    async with review.app.state.service.sessionmaker() as session:
        await session.execute(statement)
        await session.commit()


async def row(review: Review, claim_id: str, seq: int) -> HistoryEntry:
    async with review.app.state.service.sessionmaker() as session:
        entry = await session.scalar(
            select(HistoryEntry).where(HistoryEntry.claim_id == claim_id, HistoryEntry.seq == seq)
        )
        assert entry is not None
        return entry


async def test_an_untouched_chain_verifies(review: Review) -> None:
    claim_id = await decided_claim(review)
    body = await chain(review, claim_id)
    assert body["verified"] is True and body["broken_step"] is None
    steps = body["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert steps[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(steps))
    assert all(len(s["hash"]) == 64 for s in steps)
    assert await broken_step(review, claim_id) is None
    report = await verify(review)
    assert report["checked"] >= 1


async def test_an_edited_reason_is_detected(review: Review) -> None:
    claim_id = await decided_claim(review)
    await execute(
        review,
        update(HistoryEntry)
        .where(HistoryEntry.claim_id == claim_id, HistoryEntry.seq == 3)
        .values(reason="材料齐全"),
    )
    body = await chain(review, claim_id)
    assert (body["verified"], body["broken_step"]) == (False, 3)
    assert await broken_step(review, claim_id) == 3


async def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(review: Review) -> None:
    claim_id = await decided_claim(review)
    entry = await row(review, claim_id, 2)
    forged = step_hash(
        claim_id=claim_id,
        seq=2,
        revision=entry.revision,
        stage=entry.stage,
        org_id=entry.org_id,
        from_org_id=None,
        actor="unit_admin:someone-else",
        decision=entry.decision,
        reason=entry.reason,
        at=entry.at,
        prev_hash=entry.prev_hash,
    )
    await execute(
        review,
        update(HistoryEntry)
        .where(HistoryEntry.id == entry.id)
        .values(actor="unit_admin:someone-else", hash=forged),
    )
    assert await broken_step(review, claim_id) == 3


async def test_a_deleted_step_is_detected(review: Review) -> None:
    claim_id = await decided_claim(review)
    await execute(
        review,
        delete(HistoryEntry).where(HistoryEntry.claim_id == claim_id, HistoryEntry.seq == 2),
    )
    assert (await chain(review, claim_id))["verified"] is False
    assert await broken_step(review, claim_id) == 2


async def test_a_deleted_last_step_is_detected(review: Review) -> None:
    claim_id = await decided_claim(review)
    await execute(
        review,
        delete(HistoryEntry).where(HistoryEntry.claim_id == claim_id, HistoryEntry.seq == 4),
    )
    body = await chain(review, claim_id)
    assert (body["verified"], body["broken_step"]) == (False, 4)
    assert await broken_step(review, claim_id) == 4


async def test_an_inserted_step_is_detected_even_with_a_correct_hash(review: Review) -> None:
    claim_id = await decided_claim(review)
    last = await row(review, claim_id, 4)
    values: dict[str, Any] = {
        "id": "forged-step",
        "claim_id": claim_id,
        "seq": 5,
        "revision": 2,
        "stage": "authority",
        "org_id": review.orgs["D1"],
        "from_org_id": None,
        "actor": "district_admin:forger",
        "decision": "approve",
        "reason": None,
        "at": last.at + timedelta(seconds=1),
        "prev_hash": last.hash,
    }
    values["hash"] = step_hash(**{k: v for k, v in values.items() if k != "id"})
    await execute(review, insert(HistoryEntry).values(**values))
    body = await chain(review, claim_id)
    assert (body["verified"], body["broken_step"]) == (False, 5)
    assert await broken_step(review, claim_id) == 5


async def test_only_the_city_verifies_everything(review: Review) -> None:
    for headers in (review.reviewer("D1"), review.reviewer("U1"), review.auth("system")):
        r = await review.http.get("/v1/admin/history/verify", headers=headers)
        assert_problem(r, 403, "role_not_allowed")
