"""What a reviewer sees on a task beyond the claim's numbers: the filing status (备案) of the
training project the claim cites, kept from the registry's ``project.*`` events in review's own
replica, and a special-leave claim's ``leave_kind`` and ``leave_reason`` — in the task list and
in the task's detail (``GET /v1/review-tasks/{id}``), at both stages."""

from __future__ import annotations

import uuid
from typing import Any

from libs.common.events import ProjectApproved, ProjectRejected, ProjectReturned, ProjectSubmitted
from services.review.tests.support import Review
from tests.support import assert_problem


def filing(kind: type[Any], project_id: str, **extra: Any) -> Any:
    return kind(
        project_id=project_id,
        name="数字化管理师（初级）培训班",
        year=2026,
        applicant_org_id="provider-1",
        **extra,
    )


async def detail(review: Review, task_id: str, org: str | None = None) -> dict[str, Any]:
    headers = review.reviewer(org) if org else review.city
    r = await review.http.get(f"/v1/review-tasks/{task_id}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_the_cited_projects_filing_status_follows_the_registry(review: Review) -> None:
    project_id = str(uuid.uuid4())
    # cited before review has heard of the filing: shown, its status unknown
    claim_id = await review.submit("U1", project_id=project_id)
    task = await review.open_task(claim_id)
    assert task["project"] == {
        "id": project_id,
        "name": None,
        "year": None,
        "status": "unknown",
        "opinion": None,
    }
    await review.registry_event(filing(ProjectSubmitted, project_id), project_id)
    assert (await review.open_task(claim_id))["project"]["status"] == "submitted"
    await review.registry_event(
        filing(ProjectReturned, project_id, opinion="补充培训计划"), project_id
    )
    shown = (await detail(review, task["id"], "U1"))["project"]
    assert (shown["status"], shown["opinion"]) == ("returned", "补充培训计划")
    await review.registry_event(filing(ProjectSubmitted, project_id), project_id)
    await review.registry_event(filing(ProjectApproved, project_id), project_id)
    [listed] = (
        await review.http.get(
            "/v1/review-tasks",
            params={"status": "open", "stage": "unit", "claim_id": claim_id},
            headers=review.reviewer("U1"),
        )
    ).json()["items"]
    assert listed["id"] == task["id"]
    assert listed["project"] == {
        "id": project_id,
        "name": "数字化管理师（初级）培训班",
        "year": 2026,
        "status": "approved",
        "opinion": None,
    }
    # the unit approves: the authority-stage task cites the same project
    r = await review.decide(task, "U1")
    assert r.status_code == 200 and r.json()["project"]["status"] == "approved", r.text
    authority = await review.open_task(claim_id)
    assert authority["stage"] == "authority" and authority["project"]["id"] == project_id
    # a later refusal of the filing shows on the task still in review
    await review.registry_event(
        filing(ProjectRejected, project_id, opinion="培训内容与备案不符"), project_id
    )
    shown = (await detail(review, authority["id"], "D1"))["project"]
    assert (shown["status"], shown["opinion"]) == ("rejected", "培训内容与备案不符")

    # a claim that cites no project shows none
    plain = await review.open_task(await review.submit("U1"))
    assert plain["project"] is None and plain["leave_kind"] is None


async def test_special_leave_shows_its_kind_and_reason(review: Review) -> None:
    claim_id = await review.submit(
        "U1",
        category="special_leave",
        leave_kind="other",
        leave_reason="援疆医疗队，省卫健委认定",
    )
    task = await review.open_task(claim_id)
    assert (task["leave_kind"], task["leave_reason"]) == ("other", "援疆医疗队，省卫健委认定")
    assert (await detail(review, task["id"], "U1"))["leave_kind"] == "other"
    r = await review.decide(task, "U1")
    assert r.status_code == 200, r.text
    authority = await review.open_task(claim_id)
    assert authority["stage"] == "authority"
    assert (authority["leave_kind"], authority["leave_reason"]) == (
        "other",
        "援疆医疗队，省卫健委认定",
    )


async def test_a_task_outside_the_callers_scope_is_not_found(review: Review) -> None:
    task = await review.open_task(await review.submit("U1"))
    r = await review.http.get(f"/v1/review-tasks/{task['id']}", headers=review.reviewer("U2"))
    assert_problem(r, 404, "task_not_found")
    r = await review.http.get("/v1/review-tasks/no-such-task", headers=review.reviewer("U1"))
    assert_problem(r, 404, "task_not_found")
