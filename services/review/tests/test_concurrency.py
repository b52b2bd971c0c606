"""Two reviewers deciding the same task at the same moment (PostgreSQL, two connections):
exactly one decision lands, the other is told the task is decided, one event is published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from libs.common.auth import Principal
from libs.common.errors import Conflict
from libs.common.events import Affiliation, ClaimSubmitted
from libs.common.settings import Settings
from services.review import service
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
