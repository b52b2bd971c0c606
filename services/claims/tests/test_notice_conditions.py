"""The notice's remaining conditions, through the API of a real claims app (issue 10):
special leave by kind (附件1 item 7), caps at submission that see the claims still in review,
and title readiness by completion and submission dates (notice 六)."""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from libs.common.clock import BEIJING
from libs.common.events import LearningRecorded, topic_of
from services.claims.tests.harness import (
    CLOCK,
    DATABASES,
    Person,
    Stack,
    credits_of,
    database_url_for,
    pdf_bytes,
    set_clock,
    unit_stack,
)
from tests.support import assert_problem

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    return database_url_for(request, "claims_notice")


@pytest.fixture(scope="module")
async def stack(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with unit_stack(tmp_path_factory.mktemp("notice-conditions"), database_url) as s:
        yield s


@pytest.fixture
async def person(stack: Stack) -> Person:
    return await stack.register(stack.orgs["unit"])


async def leave(stack: Stack, person: Person, **fields: Any) -> Any:
    evidence = await stack.upload(person, pdf_bytes("leave"))
    months = fields.get("months")
    dates = {}
    if isinstance(months, int) and 1 <= months <= 12 and "start_date" not in fields:
        # leave is declared by its dates (issue 20): January to the month-th month
        end = date(2026, months, calendar.monthrange(2026, months)[1])
        dates = {"start_date": "2026-01-01", "end_date": min(end, CLOCK.date()).isoformat()}
    body = {
        "person_id": person.id,
        "year": 2026,
        "category": "special_leave",
        "title": "病假",
        "evidence_ids": [evidence],
        **dates,
        **fields,
    }
    return await stack.http.post("/v1/claims", json=body, headers=person.auth)


# --- special leave ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "months"), [("abroad", 6), ("sick", 6), ("sick", 1), ("abroad", 3)]
)
async def test_abroad_and_sick_leave_of_six_months_or_less_are_refused(
    stack: Stack, person: Person, kind: str, months: int
) -> None:
    async with stack.no_new_state(person.id):
        problem = assert_problem(
            await leave(stack, person, leave_kind=kind, months=months), 422, "leave_too_short"
        )
    assert problem["more_than_months"] == 6 and problem["leave_kind"] == kind
    assert "more than 6 months" in problem["detail"]


async def test_abroad_leave_of_seven_months_is_shown_to_reviewers_and_on_the_transcript(
    stack: Stack, person: Person
) -> None:
    response = await leave(stack, person, leave_kind="abroad", months=7)
    assert response.status_code == 201, response.text
    claim = response.json()
    assert claim["leave_kind"] == "abroad" and claim["leave_reason"] is None
    assert credits_of(claim["expected_credits"]) == {"public": 17.5, "professional": 35}
    # what review receives: the kind travels in claim.submitted
    [event] = await stack.outbox(claim["id"])
    assert event.type == "claim.submitted" and event.data["leave_kind"] == "abroad"
    # a unit admin in scope reads it on the claim
    unit = stack.auth("unit_admin", org=stack.orgs["unit"])
    seen = await stack.http.get(f"/v1/claims/{claim['id']}", headers=unit)
    assert seen.json()["leave_kind"] == "abroad"
    await stack.approve(claim)
    entries = (await stack.transcript(person.id))["entries"]
    assert {e["leave_kind"] for e in entries} == {"abroad"} and len(entries) == 2


async def test_maternity_leave_has_no_minimum(stack: Stack, person: Person) -> None:
    response = await leave(stack, person, leave_kind="maternity", months=2)
    assert response.status_code == 201, response.text
    assert credits_of(response.json()["expected_credits"]) == {"public": 5, "professional": 10}


async def test_other_leave_needs_a_reason_for_the_reviewers(stack: Stack, person: Person) -> None:
    async with stack.no_new_state(person.id):
        assert_problem(
            await leave(stack, person, leave_kind="other", months=4), 422, "leave_reason_required"
        )
        assert_problem(
            await leave(stack, person, leave_kind="other", months=4, leave_reason="  "),
            422,
            "leave_reason_required",
        )
    reason = "省卫健委认定：援外医疗队轮休"
    response = await leave(stack, person, leave_kind="other", months=4, leave_reason=reason)
    assert response.status_code == 201, response.text
    assert response.json()["leave_reason"] == reason
    [event] = await stack.outbox(response.json()["id"])
    assert (event.data["leave_kind"], event.data["leave_reason"]) == ("other", reason)


@pytest.mark.parametrize("kind", [None, "holiday"])
async def test_special_leave_names_a_known_kind(
    stack: Stack, person: Person, kind: str | None
) -> None:
    async with stack.no_new_state(person.id):
        problem = assert_problem(
            await leave(stack, person, leave_kind=kind, months=8), 422, "invalid_leave_kind"
        )
    assert problem["allowed"] == ["abroad", "sick", "maternity", "other"]


async def test_other_categories_name_no_leave_kind(stack: Stack, person: Person) -> None:
    evidence = await stack.upload(person)
    body = {
        "person_id": person.id,
        "year": 2026,
        "category": "study",
        "title": "单位组织学习",
        "hours": 10,
        "leave_kind": "sick",
        "evidence_ids": [evidence],
    }
    response = await stack.http.post("/v1/claims", json=body, headers=person.auth)
    assert_problem(response, 422, "invalid_leave_kind")


# --- caps at submission see the claims in review ------------------------------------------


async def study(stack: Stack, person: Person, hours: float, title: str) -> dict[str, Any]:
    evidence = await stack.upload(person)
    body = {"year": 2026, "category": "study", "title": title, "hours": hours}
    return await stack.submit(person, {**body, "evidence_ids": [evidence]})


async def test_a_study_claim_is_warned_about_a_pending_one_under_the_same_cap(
    stack: Stack, person: Person
) -> None:
    first = await study(stack, person, 30, "在职研究生课程")
    assert first["warnings"] == []
    second = await study(stack, person, 20, "单位集中学习")
    # expected credits say what it credits if approved now; the warning the worst case
    assert second["expected_credits"] == [{"subject": "professional", "hours": 20}]
    [warning] = second["warnings"]
    assert "40 h yearly cap on study" in warning
    assert "「在职研究生课程」 (30 h" in warning and first["id"] in warning
    assert "only 10 of this claim's 20 hours can count" in warning
    assert "10 h of room left" in warning
    # caps are still booked in approval order: the second, approved first, gets all 20
    assert (await stack.approve(second))["credits"] == [{"subject": "professional", "hours": 20}]
    assert (await stack.approve(first))["credits"] == [{"subject": "professional", "hours": 20}]
    assert (await stack.transcript(person.id))["credited"]["professional"] == 40


async def test_no_warning_while_the_pending_claims_leave_room(stack: Stack, person: Person) -> None:
    await study(stack, person, 15, "岗位培训")
    assert (await study(stack, person, 20, "业务学习"))["warnings"] == []


async def test_a_pending_special_leave_warns_a_second_one(stack: Stack, person: Person) -> None:
    first = (await leave(stack, person, leave_kind="maternity", months=4)).json()
    second = (
        await leave(
            stack,
            person,
            leave_kind="maternity",
            months=2,
            start_date="2026-07-01",
            end_date="2026-08-31",
        )
    ).json()
    [warning] = second["warnings"]
    assert "1 claim(s) yearly cap on time off post" in warning and first["id"] in warning
    assert "only 0 of this claim's 15 hours can count" in warning


# --- title readiness by completion and submission -----------------------------------------


async def training_at(
    stack: Stack, person: Person, at: datetime, end: str, title: str
) -> dict[str, Any]:
    set_clock(stack.app, at)
    try:
        evidence = await stack.upload(person)
        body = {
            "year": 2026,
            "category": "training",
            "title": title,
            "hours": 16,
            "start_date": end[:8] + f"{int(end[8:]) - 1:02d}",
            "end_date": end,
            "reference_no": "鲁卫继备〔2026〕15号",
            "evidence_ids": [evidence],
        }
        return await stack.submit(person, body)
    finally:
        set_clock(stack.app, CLOCK)


async def test_readiness_counts_completion_and_submission_not_approval(
    stack: Stack, person: Person
) -> None:
    # the application on 2026-10-09 has its deadline on 2026-09-24 (5 working days back)
    # city platform: 30 public hours completed in June, pushed to us only in December
    await stack.publish(
        topic_of("sync"),
        LearningRecorded(
            record_id=f"zzzj-{person.id}",
            id_number=person.id_number,
            year=2026,
            subject="public",
            hours=30,
            course="公需科目",
            completed_at=datetime(2026, 6, 1, 10, tzinfo=BEIJING),
        ),
        subject=person.id,
    )
    in_time = datetime(2026, 9, 10, 9, tzinfo=BEIJING)
    approved_late = await training_at(stack, person, in_time, "2026-09-02", "急诊培训")
    await training_at(stack, person, in_time, "2026-09-04", "重症培训")  # stays in review
    late = await training_at(
        stack, person, datetime(2026, 9, 25, 9, tzinfo=BEIJING), "2026-09-22", "护理培训"
    )
    await stack.approve(approved_late)  # approved on 2026-12-20: the approval date does not matter
    await stack.approve(late)
    response = await stack.http.get(
        f"/v1/persons/{person.id}/title-readiness",
        params={"application_date": "2026-10-09"},
        headers=person.auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deadline"] == "2026-09-24"
    assert body["subjects"]["public"] == {
        "required": 30.0,
        "approved": 30.0,
        "pending_in_time": 0.0,
        "too_late": 0.0,
        "missing": 0.0,
        "missing_if_pending_approved": 0.0,
    }
    assert body["subjects"]["professional"] == {
        "required": 60.0,
        "approved": 16.0,
        "pending_in_time": 16.0,
        "too_late": 16.0,
        "missing": 44.0,
        "missing_if_pending_approved": 28.0,
    }
    assert body["credited_by_deadline"] == {"public": 30.0, "professional": 16.0}
    assert body["credited_now"] == {"public": 30.0, "professional": 32.0}
    assert body["compliant_by_deadline"] is False
    assert body["compliant_if_pending_approved"] is False


async def test_readiness_of_a_learning_record_completed_after_the_deadline(
    stack: Stack, person: Person
) -> None:
    await stack.publish(
        topic_of("sync"),
        LearningRecorded(
            record_id=f"zzzj-late-{person.id}",
            id_number=person.id_number,
            year=2026,
            subject="public",
            hours=30,
            course="公需科目",
            completed_at=datetime(2026, 9, 24, 16, 30, tzinfo=UTC),  # 09-25 00:30 in Beijing
        ),
        subject=person.id,
    )
    response = await stack.http.get(
        f"/v1/persons/{person.id}/title-readiness",
        params={"application_date": "2026-10-09"},
        headers=person.auth,
    )
    subject = response.json()["subjects"]["public"]
    assert (subject["approved"], subject["too_late"], subject["missing"]) == (0.0, 30.0, 30.0)
