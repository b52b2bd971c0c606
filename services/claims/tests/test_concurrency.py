"""Races that only a real multi-connection database shows (PostgreSQL): two approvals of one
person's claims booked at the same moment (as on two replicas of the claims service) must still
respect the yearly cap, because booking locks the person."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from pathlib import Path

from libs.common.auth import Principal
from libs.common.errors import RuleViolation
from libs.common.events import ClaimApproved
from services.claims import service
from services.claims.commands import ClaimCommand
from services.claims.tests.harness import claims_stack


async def test_concurrent_approvals_never_exceed_the_study_cap(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    url = await asyncio.to_thread(make_pg_database, "claims_race")
    async with claims_stack(tmp_path, url) as stack:
        unit = await stack.add_org("unit")
        person = await stack.register(unit)
        claims = []
        for i in range(3):
            evidence = await stack.upload(person, f"%PDF-1.4 study {i}\n%%EOF\n".encode())
            claims.append(
                await stack.submit(
                    person,
                    {
                        "year": 2026,
                        "category": "study",
                        "title": f"单位组织学习 {i}",
                        "hours": 30,
                        "evidence_ids": [evidence],
                    },
                )
            )
        state = stack.app.state.service

        async def approve(claim: dict[str, object]) -> None:
            async with state.uow() as uow:
                await service.approved(
                    uow,
                    ClaimApproved(
                        claim_id=str(claim["id"]),
                        revision=1,
                        person_id=person.id,
                        org_id="district",
                        actor="test",
                    ),
                    now=state.now(),
                )
                await asyncio.sleep(0.05)  # widen the window in which a race would show
                await uow.commit()

        await asyncio.gather(*(approve(c) for c in claims))
        transcript = await stack.transcript(person.id)
    # 3 × 30 hours claimed under the 40-hour study cap: exactly 40 may count, in approval order
    assert transcript["credited"]["professional"] == 40
    booked = sorted(e["hours"] for e in transcript["entries"] if e["counts"])
    assert booked == [0.0, 10.0, 30.0]


async def test_concurrent_submissions_for_the_same_days_never_exceed_8_hours_a_day(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    """Two 16-hour trainings of one person on the same two days, submitted at the same moment
    (as on two replicas): the submission locks the person, so the second sees the first and is
    refused (issue 20, the per-person daily cap)."""
    url = await asyncio.to_thread(make_pg_database, "claims_day_race")
    async with claims_stack(tmp_path, url) as stack:
        unit = await stack.add_org("unit")
        person = await stack.register(unit)
        principal = stack.app.state.tokens.verify(person.token)
        evidence = [
            await stack.upload(person, f"%PDF-1.4 training {i}\n%%EOF\n".encode()) for i in (1, 2)
        ]
        state = stack.app.state.service

        async def submit(evidence_id: str) -> str:
            command = ClaimCommand(
                person_id=person.id,
                year=2026,
                category="training",
                title="同日培训",
                hours=16,
                start_date=date(2026, 3, 2),
                end_date=date(2026, 3, 3),
                reference_no="鲁卫继备1号",
                evidence_ids=[evidence_id],
            )
            try:
                async with state.uow() as uow:
                    await service.submit_claim(uow, principal, command, now=state.now())
                    await asyncio.sleep(0.05)  # widen the window in which a race would show
                    await uow.commit()
            except RuleViolation as exc:
                return exc.code
            return "accepted"

        outcomes = await asyncio.gather(*(submit(e) for e in evidence))
        claims = await stack.claims_of(person.id)
    assert sorted(outcomes) == ["accepted", "daily_cap_exceeded"]
    assert len(claims) == 1


async def test_two_persons_citing_one_certificate_at_once_one_is_refused(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    """Issue 20 item 9: two persons submit the same qualification certificate at the same moment
    (each check sees no other claim yet); the hold lets exactly one through."""
    url = await asyncio.to_thread(make_pg_database, "claims_personal_race")
    async with claims_stack(tmp_path, url) as stack:
        unit = await stack.add_org("unit")
        people = [await stack.register(unit) for _ in range(2)]
        evidence = [await stack.upload(p) for p in people]
        state = stack.app.state.service

        async def submit(n: int) -> str:
            person = people[n]
            command = ClaimCommand(
                person_id=person.id,
                year=2026,
                category="qualification_exam",
                title="一级建造师",
                certificate_code="JZS-2026-000123",
                evidence_ids=[evidence[n]],
            )
            principal: Principal = stack.app.state.tokens.verify(person.token)
            try:
                async with state.uow() as uow:
                    await service.submit_claim(uow, principal, command, now=state.now())
                    await asyncio.sleep(0.2)  # both have checked before either commits
                    await uow.commit()
            except RuleViolation as exc:
                return exc.code
            return "submitted"

        outcomes = await asyncio.gather(submit(0), submit(1))
    assert sorted(outcomes) == ["evidence_of_another_person", "submitted"]
