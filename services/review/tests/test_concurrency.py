"""Two reviewers deciding the same task at the same moment (PostgreSQL, two connections):
exactly one decision lands, the other is told the task is decided, one event is published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from libs.common.auth import Principal
from libs.common.errors import Conflict, NotFound
from libs.common.events import Affiliation, ClaimSubmitted, PersonRegistered, PersonUpdated
from libs.common.settings import Settings
from services.review import history, service, transfers
from services.review.main import create_app
from services.review.models import ReviewTask


async def test_one_of_two_simultaneous_decisions_wins(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    url = await asyncio.to_thread(make_pg_database, "review_race")
    app = create_app(Settings(service="review", data_dir=tmp_path, database_url=url))
    async with app.router.lifespan_context(app):
        state = app.state.service
        async with state.uow() as uow:
            district = await service.create_org(
                uow, code="D-race", name="区", type="district", parent_id=None
            )
            unit = await service.create_org(
                uow, code="U-race", name="单位", type="unit", parent_id=district.id
            )
            await service.open_task(
                uow,
                ClaimSubmitted(
                    claim_id="claim-race",
                    revision=1,
                    person_id="p",
                    person_name="张三",
                    id_number_masked="370402********0012",
                    affiliation=Affiliation(kind="unit", org_id=unit.id),
                    year=2026,
                    category="training",
                    subject="professional",
                    title="t",
                    requested_hours=8,
                    expected_credits=[],
                ),
            )
            await uow.commit()
            task_id = await uow.session.scalar(select(ReviewTask.id))
        outbox = state.spec.infra.outbox

        async def count_events() -> int:
            async with state.sessionmaker() as session:
                return int(
                    await session.scalar(
                        select(func.count())
                        .select_from(outbox)
                        .where(outbox.c.event_type == "claim.stage_passed")
                    )
                    or 0
                )

        async def decide(reviewer: str) -> str:
            principal = Principal(sub=reviewer, role="unit_admin", org_id=unit.id)
            try:
                async with state.uow() as uow:
                    await service.decide(uow, principal, task_id, "approve", None)
                    await asyncio.sleep(0.05)  # hold the transaction open: the race window
                    await uow.commit()
                return "decided"
            except Conflict:
                return "conflict"

        outcomes = await asyncio.gather(decide("reviewer-a"), decide("reviewer-b"))
        assert sorted(outcomes) == ["conflict", "decided"]
        assert await count_events() == 1
        with pytest.raises(Conflict):
            async with state.uow() as uow:
                await service.decide(
                    uow, Principal("c", "unit_admin", unit.id), task_id, "approve", None
                )


# === a transfer (调动) racing the old unit's decisions =========================================


def submitted(claim_id: str, person_id: str, unit_id: str) -> ClaimSubmitted:
    return ClaimSubmitted(
        claim_id=claim_id,
        revision=1,
        person_id=person_id,
        person_name="李四",
        id_number_masked="370402********0034",
        affiliation=Affiliation(kind="unit", org_id=unit_id),
        year=2026,
        category="training",
        subject="professional",
        title="t",
        requested_hours=8,
        expected_credits=[],
    )


async def test_a_transfer_racing_decisions_of_the_old_unit(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    """Each of the person's claims is decided by the old unit *before* the move (the decision
    stays, its audit follows the person to the new district) or not at all by the old unit (the
    task is at the new unit): never a decision by the old org after the move, never a task left
    behind at the old unit or the old district. Without the second locking read of the move, an
    audit created by a decision committed during the move stays at the old district."""
    url = await asyncio.to_thread(make_pg_database, "review_transfer_race")
    app = create_app(Settings(service="review", data_dir=tmp_path, database_url=url))
    async with app.router.lifespan_context(app):
        state = app.state.service
        async with state.uow() as uow:
            d1 = await service.create_org(
                uow, code="D1", name="区1", type="district", parent_id=None
            )
            d2 = await service.create_org(
                uow, code="D2", name="区2", type="district", parent_id=None
            )
            u1 = await service.create_org(
                uow, code="U1", name="旧单位", type="unit", parent_id=d1.id
            )
            u2 = await service.create_org(
                uow, code="U2", name="新单位", type="unit", parent_id=d2.id
            )
            person = PersonRegistered(
                person_id="p",
                id_number="370402199001010034",
                name="李四",
                affiliation=Affiliation(kind="unit", org_id=u1.id),
            )
            await transfers.person_registered(uow, person)
            claims = [f"claim-{i}" for i in range(8)]
            for claim_id in claims:
                await service.open_task(uow, submitted(claim_id, "p", u1.id))
            await uow.commit()
        async with state.uow() as uow:
            task_of = {
                t.claim_id: t.id for t in (await uow.session.scalars(select(ReviewTask))).all()
            }
        old_unit = Principal(sub="old-reviewer", role="unit_admin", org_id=u1.id)
        outcomes: dict[str, str] = {}

        before, after = claims[:4], claims[4:]
        holding = {c: asyncio.Event() for c in before}  # a decision holds its task's row lock
        move_holds_locks = asyncio.Event()

        async def decide(claim_id: str) -> None:
            if claim_id in after:
                await move_holds_locks.wait()
            try:
                async with state.uow() as uow:
                    await service.decide(uow, old_unit, task_of[claim_id], "approve", None)
                    if claim_id in holding:
                        holding[claim_id].set()
                        await asyncio.sleep(0.05)  # the move's first read waits for this commit
                    await uow.commit()
                outcomes[claim_id] = "decided"
            except NotFound:
                outcomes[claim_id] = "not_found"

        async def move() -> None:
            for event in holding.values():
                await event.wait()
            async with state.uow() as uow:
                moved = PersonUpdated(
                    person_id="p",
                    id_number="370402199001010034",
                    name="李四",
                    affiliation=Affiliation(kind="unit", org_id=u2.id),
                )
                await transfers.person_updated(uow, moved)
                move_holds_locks.set()
                await asyncio.sleep(0.1)  # decisions arriving now wait, then find nothing
                await uow.commit()

        # four decisions in flight when the move starts, four arriving while it holds its locks
        await asyncio.gather(move(), *(decide(c) for c in claims))
        assert [outcomes[c] for c in claims] == ["decided"] * 4 + ["not_found"] * 4, outcomes
        async with state.uow() as uow:
            open_tasks = {
                t.claim_id: (t.stage, t.org_id)
                for t in (
                    await uow.session.scalars(select(ReviewTask).where(ReviewTask.status == "open"))
                ).all()
            }
            for claim_id in claims:
                expected = (
                    ("authority", d2.id) if outcomes[claim_id] == "decided" else ("unit", u2.id)
                )
                assert open_tasks[claim_id] == expected, (claim_id, outcomes[claim_id])
                entries, check = await history.chain_of(uow, claim_id)
                assert check.verified
                steps = [(e.decision, e.org_id) for e in entries]
                moved_at = next(i for i, s in enumerate(steps) if s[0] == "moved")
                assert ("approve", u1.id) not in steps[moved_at:]  # nothing by the old unit after
                if outcomes[claim_id] == "decided":
                    assert steps[:moved_at] == [("submitted", u1.id), ("approve", u1.id)]
                    assert (entries[moved_at].from_org_id, entries[moved_at].org_id) == (
                        d1.id,
                        d2.id,
                    )
                else:
                    assert (entries[moved_at].from_org_id, entries[moved_at].org_id) == (
                        u1.id,
                        u2.id,
                    )
            assert (await history.verify_all(uow))["broken"] == []
