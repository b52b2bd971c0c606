"""What claims tells the reviewers reaches them: a real claims app and a real review app (each on
its own SQLite database and event log), the ``claim.submitted`` bytes claims wrote to its outbox
handed to review's bus as the relay would, the registry's ``project.approved`` to both. The
reviewers' task list and task detail show the special leave's kind and reason, the filing
status of the project a training cites, the claimed dates and months, the expected credits and
warnings, and the person's unit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from libs.common.events import Envelope, OrgUpserted, ProjectApproved, topic_of
from services.claims.tests.harness import Person, Stack, claims_stack, pdf_bytes
from services.review.tests.support import Review, review_app


async def handed_to_review(claims: Stack, review: Review, claim_id: str) -> None:
    """The claim's ``claim.submitted``, as claims wrote it, onto review's log; returns once
    review has routed it."""
    [envelope] = [e for e in await claims.outbox(claim_id) if e.type == "claim.submitted"]
    raw = Envelope.from_bytes(envelope.to_bytes())
    await review.publish(raw, topic_of("claims"))
    await review.until_handled(raw)


@asynccontextmanager
async def review_and_claims(tmp_path: Path) -> AsyncIterator[tuple[Review, Stack, str, Person]]:
    """A review app and a claims app, review's unit U1 handed to claims, a person registered in
    it: (review, claims, unit, person)."""
    async with (
        review_app(tmp_path / "review") as review,
        claims_stack(tmp_path / "claims") as claims,
    ):
        unit = review.orgs["U1"]
        [org_event] = [e for e in await review.outbox(unit) if e.type == "org.upserted"]
        await claims.publish(
            topic_of("review"), OrgUpserted.model_validate(org_event.data), subject=unit
        )
        yield review, claims, unit, await claims.register(unit)


async def test_leave_and_the_cited_project_reach_the_reviewers(tmp_path: Path) -> None:
    async with review_and_claims(tmp_path) as (review, claims, unit, person):
        reason = "省卫健委认定：援外医疗队轮休"
        leave = await claims.submit(
            person,
            {
                "year": 2026,
                "category": "special_leave",
                "title": "援外医疗",
                "leave_kind": "other",
                "leave_reason": reason,
                "months": 4,
                "start_date": "2026-03-01",
                "end_date": "2026-06-30",
                "evidence_ids": [await claims.upload(person, pdf_bytes("leave"))],
            },
        )
        await handed_to_review(claims, review, leave["id"])
        [task] = await review.tasks(leave["id"], "open")
        assert (task["leave_kind"], task["leave_reason"]) == ("other", reason)
        assert task["project"] is None
        assert leave["months"] == 4  # the claim's own view says it too
        assert task["months"] == 4 and task["expected_credits"] == leave["expected_credits"]
        assert task["warnings"] == leave["warnings"]

        project_id = str(uuid.uuid4())
        name = "数字化管理师（初级）培训班"
        filed = ProjectApproved(project_id=project_id, name=name, year=2026, applicant_org_id="P")
        await claims.publish(topic_of("registry"), filed, subject=project_id)
        training = await claims.submit(
            person,
            {
                "year": 2026,
                "category": "training",
                "title": "数字化管理师（初级）培训班",
                "hours": 16,
                "start_date": "2026-11-09",
                "end_date": "2026-11-10",
                "project_id": project_id,
                "evidence_ids": [await claims.upload(person, pdf_bytes("training"))],
            },
        )
        await handed_to_review(claims, review, training["id"])
        [task] = await review.tasks(training["id"], "open")
        assert task["project"]["status"] == "unknown"  # the filing has not reached review yet
        await review.registry_event(filed, project_id)
        r = await review.http.get(f"/v1/review-tasks/{task['id']}", headers=review.reviewer("U1"))
        assert r.status_code == 200, r.text
        assert r.json()["project"] == {
            "id": project_id,
            "name": "数字化管理师（初级）培训班",
            "year": 2026,
            "status": "approved",
            "opinion": None,
        }
        assert r.json()["leave_kind"] is None
        # the dates, expected credits and unit the task page shows, as claimed
        shown = r.json()
        assert (shown["start_date"], shown["end_date"]) == ("2026-11-09", "2026-11-10")
        assert (training["start_date"], training["end_date"]) == ("2026-11-09", "2026-11-10")
        assert shown["expected_credits"] == [{"subject": "professional", "hours": 16.0}]
        assert shown["unit"]["id"] == unit and shown["unit"]["name"]


async def test_travel_days_and_the_transfer_reach_the_reviewers(tmp_path: Path) -> None:
    """Issue 20: an expert activity's travel and rest days and a transfer-in's date and issuing
    authority are on the reviewers' task, as claimed."""
    async with review_and_claims(tmp_path) as (review, claims, _unit, person):
        activity = await claims.submit(
            person,
            {
                "year": 2026,
                "category": "expert_activity",
                "title": "职称评审",
                "hours": 16,
                "start_date": "2026-06-01",
                "end_date": "2026-06-03",
                "travel_days": 1,
                "evidence_ids": [await claims.upload(person, pdf_bytes("activity"))],
            },
        )
        transfer = await claims.submit(
            person,
            {
                "year": 2026,
                "category": "transfer_in",
                "title": "外地调入",
                "transfer_date": "2026-05-06",
                "issuing_authority": "济南市人力资源和社会保障局",
                "credits": [{"subject": "professional", "hours": 40}],
                "evidence_ids": [await claims.upload(person, pdf_bytes("transfer"))],
            },
        )
        for claim in (activity, transfer):
            await handed_to_review(claims, review, claim["id"])
        [task] = await review.tasks(activity["id"], "open")
        r = await review.http.get(f"/v1/review-tasks/{task['id']}", headers=review.reviewer("U1"))
        assert r.status_code == 200, r.text
        assert r.json()["travel_days"] == 1 and task["travel_days"] == 1
        [task] = await review.tasks(transfer["id"], "open")
        assert (task["transfer_date"], task["issuing_authority"]) == (
            "2026-05-06",
            "济南市人力资源和社会保障局",
        )
