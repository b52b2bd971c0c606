"""The notice to the letter, round 2 (issue 20), through the API of a real claims app: one
person's day holds at most 8 hours across all their claims (附件1.1, 1.4), a month is credited
once across aid deployment and time off post and their months follow their dates (附件1.4,
1.7), an expert activity's travel and rest days are not credited (附件1.4 「往返和休息时间除外」),
and a transfer-in names its transfer date and issuer and is plausible (四(三))."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest

from libs.common.workdays import is_working_day
from services.claims.tests.harness import (
    DATABASES,
    Person,
    Stack,
    credits_of,
    database_url_for,
    pdf_bytes,
    unit_stack,
)
from tests.support import assert_problem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    return database_url_for(request, "claims_round2")


@pytest.fixture(scope="module")
async def stack(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with unit_stack(tmp_path_factory.mktemp("notice-round2"), database_url) as s:
        yield s


@pytest.fixture
async def person(stack: Stack) -> Person:
    return await stack.register(stack.orgs["unit"])


async def post(stack: Stack, person: Person, category: str, **fields: Any) -> Any:
    evidence = await stack.upload(person, pdf_bytes(f"{category} {fields}"))
    body = {
        "person_id": person.id,
        "year": 2026,
        "category": category,
        "title": f"{category} {fields.get('start_date', '')}",
        "evidence_ids": [evidence],
        **fields,
    }
    return await stack.http.post("/v1/claims", json=body, headers=person.auth)


async def accepted(stack: Stack, person: Person, category: str, **fields: Any) -> dict[str, Any]:
    r = await post(stack, person, category, **fields)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def maternity_april_to_july(stack: Stack, person: Person) -> dict[str, Any]:
    """The issue's maternity leave, April–July 2026, accepted."""
    return await accepted(
        stack,
        person,
        "special_leave",
        leave_kind="maternity",
        start_date="2026-04-01",
        end_date="2026-07-31",
    )


async def refused(
    stack: Stack, person: Person, code: str, category: str, **fields: Any
) -> dict[str, Any]:
    async with stack.no_new_state(person.id):
        return assert_problem(await post(stack, person, category, **fields), 422, code)


def training(start: str, end: str, hours: float) -> dict[str, Any]:
    return {"start_date": start, "end_date": end, "hours": hours, "reference_no": "鲁卫继备1号"}


# --- 2. at most 8 hours a day per person -----------------------------------------------------


async def test_one_persons_claims_on_the_same_days_share_8_hours_a_day(
    stack: Stack, person: Person
) -> None:
    """The issue's case: a 16 h two-day training, a second 16 h training and 8 h of expert
    activity on the same two days — only the first fits."""
    first = await accepted(stack, person, "training", **training("2026-03-02", "2026-03-03", 16))
    problem = await refused(
        stack, person, "daily_cap_exceeded", "training", **training("2026-03-02", "2026-03-03", 16)
    )
    assert (problem["day"], problem["until"], problem["max_hours"]) == (
        "2026-03-02",
        "2026-03-03",
        16,
    )
    assert problem["claimed_hours"] == 32
    assert [c["claim_id"] for c in problem["claims"]] == [first["id"]]
    assert first["id"] in problem["detail"]
    problem = await refused(
        stack,
        person,
        "daily_cap_exceeded",
        "expert_activity",
        start_date="2026-03-03",
        end_date="2026-03-03",
        hours=8,
    )
    assert [c["claim_id"] for c in problem["claims"]] == [first["id"]]
    # the next day is free
    await accepted(
        stack, person, "expert_activity", start_date="2026-03-04", end_date="2026-03-04", hours=8
    )


async def test_claims_sharing_days_within_8_hours_warn_the_reviewers(
    stack: Stack, person: Person
) -> None:
    first = await accepted(stack, person, "training", **training("2026-04-06", "2026-04-07", 12))
    second = await accepted(
        stack, person, "expert_activity", start_date="2026-04-07", end_date="2026-04-07", hours=4
    )
    [warning] = second["warnings"]
    assert first["id"] in warning and "8 hours a day" in warning
    [event] = [e for e in await stack.outbox(second["id"]) if e.type == "claim.submitted"]
    assert event.data["warnings"] == second["warnings"]  # what the review task shows


async def test_approved_claims_count_and_withdrawn_or_rejected_ones_free_their_days(
    stack: Stack, person: Person
) -> None:
    days = training("2026-05-11", "2026-05-12", 16)
    first = await accepted(stack, person, "training", **days)
    await stack.approve(first)
    await refused(stack, person, "daily_cap_exceeded", "training", **days)

    other = await accepted(stack, person, "training", **training("2026-05-18", "2026-05-18", 8))
    await refused(
        stack, person, "daily_cap_exceeded", "training", **training("2026-05-18", "2026-05-18", 1)
    )
    rejected = await stack.reject(other, "证书不清晰")
    assert rejected["status"] == "rejected"
    replacement = await accepted(
        stack, person, "training", **training("2026-05-18", "2026-05-18", 6)
    )
    # the rejected claim's revision replaces it and must fit beside the replacement
    evidence = await stack.upload(person, pdf_bytes("revision"))
    revise = {
        "person_id": person.id,
        "year": 2026,
        "category": "training",
        "title": "修订",
        "evidence_ids": [evidence],
        **training("2026-05-18", "2026-05-18", 8),
    }
    r = await stack.http.post(
        f"/v1/claims/{other['id']}/revisions", json=revise, headers=person.auth
    )
    assert_problem(r, 422, "daily_cap_exceeded")
    r = await stack.http.post(
        f"/v1/claims/{other['id']}/revisions",
        json={**revise, "hours": 2},
        headers=person.auth,
    )
    assert r.status_code in (200, 201), r.text

    r = await stack.http.post(f"/v1/claims/{replacement['id']}/withdraw", headers=person.auth)
    assert r.status_code == 200, r.text
    await accepted(stack, person, "training", **training("2026-05-18", "2026-05-18", 6))


# --- 4. travel and rest days -----------------------------------------------------------------


async def test_travel_and_rest_days_of_an_expert_activity_are_not_credited(
    stack: Stack, person: Person
) -> None:
    span = {"start_date": "2026-06-01", "end_date": "2026-06-05"}
    problem = await refused(
        stack, person, "daily_cap_exceeded", "expert_activity", **span, travel_days=2, hours=32
    )
    assert (problem["max_hours"], problem["days"], problem["travel_days"]) == (24, 5, 2)
    for bad in (5, -1):
        await refused(
            stack,
            person,
            "invalid_travel_days",
            "expert_activity",
            **span,
            travel_days=bad,
            hours=8,
        )
    await refused(
        stack,
        person,
        "invalid_travel_days",
        "training",
        **training("2026-06-08", "2026-06-09", 8),
        travel_days=1,
    )
    claim = await accepted(stack, person, "expert_activity", **span, travel_days=2, hours=24)
    assert claim["travel_days"] == 2
    assert claim["expected_credits"] == [{"subject": "professional", "hours": 24}]
    [event] = [e for e in await stack.outbox(claim["id"]) if e.type == "claim.submitted"]
    assert event.data["travel_days"] == 2
    # the travel days are taken in full: nothing else fits on the activity's days
    await refused(
        stack, person, "daily_cap_exceeded", "training", **training("2026-06-03", "2026-06-03", 8)
    )


# --- 3. months credited once, months from the dates -----------------------------------------


async def test_aid_and_maternity_leave_on_the_same_months_credit_them_once(
    stack: Stack, person: Person
) -> None:
    """The issue's case: aid March–May and maternity April–July; April and May count once."""
    aid = await accepted(
        stack, person, "aid_deployment", start_date="2026-03-01", end_date="2026-05-31"
    )
    assert aid["months"] == 3  # computed from the dates
    assert credits_of(aid["expected_credits"]) == {"public": 7.5, "professional": 15}
    await stack.approve(aid)
    leave = await maternity_april_to_july(stack, person)
    assert leave["months"] == 4
    assert credits_of(leave["expected_credits"]) == {"public": 5, "professional": 10}
    assert any(aid["id"] in w and "only the other 2 month(s)" in w for w in leave["warnings"])
    approved = await stack.approve(leave)
    assert credits_of(approved["credits"]) == {"public": 5, "professional": 10}
    transcript = await stack.transcript(person.id)
    assert transcript["credited"] == {"public": 12.5, "professional": 25, "total": 37.5}
    # months all credited already
    problem = await refused(
        stack,
        person,
        "months_already_credited",
        "aid_deployment",
        start_date="2026-04-01",
        end_date="2026-05-31",
    )
    assert {c["claim_id"] for c in problem["claims"]} == {aid["id"], leave["id"]}


async def test_months_in_review_are_credited_to_the_claim_approved_first(
    stack: Stack, person: Person
) -> None:
    aid = await accepted(
        stack, person, "aid_deployment", start_date="2026-03-01", end_date="2026-05-31"
    )
    leave = await maternity_april_to_july(stack, person)
    assert any(aid["id"] in w and "in review" in w for w in leave["warnings"])
    assert credits_of(leave["expected_credits"]) == {"public": 10, "professional": 20}
    await stack.approve(leave)
    approved = await stack.approve(aid)  # April and May went to the leave: March only
    assert credits_of(approved["credits"]) == {"public": 2.5, "professional": 5}


async def test_months_must_fit_the_dates_which_are_required(stack: Stack, person: Person) -> None:
    """The issue's case: months 12 with dates in September only (90 h) is refused."""
    problem = await refused(
        stack,
        person,
        "months_mismatch",
        "aid_deployment",
        months=12,
        start_date="2026-09-01",
        end_date="2026-09-30",
    )
    assert problem["months"] == 1
    await refused(stack, person, "invalid_dates", "aid_deployment", months=3)
    await refused(stack, person, "invalid_dates", "special_leave", leave_kind="maternity", months=3)
    await refused(
        stack,
        person,
        "invalid_months",
        "aid_deployment",
        start_date="2026-09-01",
        end_date="2026-09-10",
    )
    # a month counts from 15 of its days: 2026-09-16 .. 2026-11-14 covers Sep (15) and Oct
    claim = await accepted(
        stack, person, "aid_deployment", months=2, start_date="2026-09-16", end_date="2026-11-14"
    )
    assert credits_of(claim["expected_credits"]) == {"public": 5, "professional": 10}


async def test_sick_leave_declared_by_dates_counts_its_months(stack: Stack, person: Person) -> None:
    span = {"leave_kind": "sick", "start_date": "2026-01-05", "end_date": "2026-07-10"}
    problem = await refused(stack, person, "leave_too_short", "special_leave", **span)
    assert problem["more_than_months"] == 6  # Jan..Jun: 6 months, July has only 10 days
    claim = await accepted(stack, person, "special_leave", **{**span, "end_date": "2026-07-20"})
    assert claim["months"] == 7


# --- 6. transfer-in ------------------------------------------------------------------------


def working_days_before(day: date) -> int:
    first, count = date(2026, 1, 1), 0
    while first < day:
        count += is_working_day(first)[0]
        first += timedelta(days=1)
    return count


async def test_transfer_in_names_its_date_and_issuer_and_is_plausible(
    stack: Stack, person: Person
) -> None:
    credits = [{"subject": "professional", "hours": 200}]
    problem = await refused(
        stack, person, "transfer_details_required", "transfer_in", credits=credits
    )
    assert set(problem["missing"]) == {"transfer_date", "issuing_authority"}
    issuer = {"issuing_authority": "济南市人力资源和社会保障局"}
    await refused(
        stack,
        person,
        "transfer_details_required",
        "transfer_in",
        credits=credits,
        transfer_date="2026-02-01",
    )
    await refused(
        stack,
        person,
        "invalid_transfer_details",
        "transfer_in",
        credits=credits,
        transfer_date="2025-12-01",
        **issuer,
    )
    await refused(
        stack,
        person,
        "invalid_transfer_details",
        "study",
        hours=4,
        transfer_date="2026-02-01",
        **issuer,
    )
    # the case: 200 professional hours for a transfer on 1 February
    problem = await refused(
        stack,
        person,
        "transfer_hours_implausible",
        "transfer_in",
        credits=credits,
        transfer_date="2026-02-01",
        **issuer,
    )
    working = working_days_before(date(2026, 2, 1))
    assert problem["working_days"] == working and problem["max_hours"] == 8 * working
    claim = await accepted(
        stack,
        person,
        "transfer_in",
        transfer_date="2026-02-01",
        **issuer,
        credits=[{"subject": "public", "hours": 20}, {"subject": "professional", "hours": 40}],
    )
    assert (claim["transfer_date"], claim["issuing_authority"]) == (
        "2026-02-01",
        issuer["issuing_authority"],
    )
    [event] = [e for e in await stack.outbox(claim["id"]) if e.type == "claim.submitted"]
    assert event.data["transfer_date"] == "2026-02-01"
    assert event.data["issuing_authority"] == issuer["issuing_authority"]
