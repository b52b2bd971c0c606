"""The tamper-evident history: each step hashes its content and the previous step's hash. Rows
edited, deleted or inserted straight in the database (as an insider with SQL access would) are
detected by GET /v1/claims/{id}/history (``verified: false``) and by GET /v1/admin/history/verify,
which names the claim and its first broken step."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, delete, insert, select, text, update

from libs.common.db import UTCDateTime, create_engine, create_sessionmaker
from libs.common.migrations import upgrade
from services.review.history import GENESIS, step_hash, verify_chain
from services.review.main import SPEC
from services.review.models import HistoryEntry, HistoryHead
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


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_migration_chains_history_written_before_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A database with decisions from before the chain existed upgrades to verified chains."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'review.db'}"
    else:
        url = request.getfixturevalue("make_pg_database")("review_chain_mig")
    upgrade(SPEC.migrations_dir, url, "de456ecd027d")
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    old_rows = [
        ("c1", 1, "unit", "u1", "person:p1", "submitted", None, start),
        ("c1", 1, "unit", "u1", "unit_admin:u1", "approve", None, start + timedelta(hours=1)),
        ("c2", 1, "unit", "u1", "person:p2", "submitted", None, start + timedelta(hours=2)),
        (
            "c1",
            1,
            "authority",
            "d1",
            "district_admin:d1",
            "reject",
            "不清晰",
            start + timedelta(hours=3),
        ),
    ]

    async def seed_and_check() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                for i, (claim, rev, stage, org, actor, decision, reason, at) in enumerate(old_rows):
                    await conn.execute(
                        text(
                            "INSERT INTO review_history (id, claim_id, revision, stage, org_id,"
                            " actor, decision, reason, at) VALUES (:id, :c, :r, :s, :o, :a, :d,"
                            " :reason, :at)"
                        ).bindparams(bindparam("at", type_=UTCDateTime())),
                        {
                            "id": f"old-{i}",
                            "c": claim,
                            "r": rev,
                            "s": stage,
                            "o": org,
                            "a": actor,
                            "d": decision,
                            "reason": reason,
                            "at": at,
                        },
                    )
            await asyncio.to_thread(upgrade, SPEC.migrations_dir, url)
            async with create_sessionmaker(engine)() as session:
                entries = (
                    await session.scalars(
                        select(HistoryEntry).order_by(HistoryEntry.claim_id, HistoryEntry.seq)
                    )
                ).all()
                assert [(e.claim_id, e.seq, e.decision) for e in entries] == [
                    ("c1", 1, "submitted"),
                    ("c1", 2, "approve"),
                    ("c1", 3, "reject"),
                    ("c2", 1, "submitted"),
                ]
                heads = {h.claim_id: h for h in (await session.scalars(select(HistoryHead))).all()}
                c1 = [e for e in entries if e.claim_id == "c1"]
                assert verify_chain(c1, heads["c1"]).verified
        finally:
            await engine.dispose()

    asyncio.run(seed_and_check())
