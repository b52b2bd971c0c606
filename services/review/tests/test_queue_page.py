"""What the console's 待审核 queue and task page read from review (issue 18 item 6): every task
carries the claimed dates, months, expected credits, warnings and the person's unit; the queue
filters by category, a search box (name or masked ID number), verified evidence, sorts oldest or
newest first and answers the ``total`` of the whole filtered queue — in a bounded number of SQL
statements whatever the page's size."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from services.review.tests.support import Review
from tests.support import assert_problem


async def queue(review: Review, org: str, **params: Any) -> dict[str, Any]:
    r = await review.http.get(
        "/v1/review-tasks",
        params={"status": "open", "stage": "unit", **params},
        headers=review.reviewer(org),
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_task_carries_dates_months_credits_warnings_and_unit(review: Review) -> None:
    claim_id = await review.submit(
        "U1",
        category="aid_deployment",
        start_date="2026-01-05",
        end_date="2026-06-30",
        months=6,
        expected_credits=[
            {"subject": "public", "hours": 15},
            {"subject": "professional", "hours": 30},
        ],
        warnings=["与特殊假期重叠的月份只计一次"],
    )
    task = await review.open_task(claim_id)
    assert (task["start_date"], task["end_date"], task["months"]) == (
        "2026-01-05",
        "2026-06-30",
        6,
    )
    assert task["expected_credits"] == [
        {"subject": "public", "hours": 15.0},
        {"subject": "professional", "hours": 30.0},
    ]
    assert task["warnings"] == ["与特殊假期重叠的月份只计一次"]
    assert task["unit"] == {"id": review.orgs["U1"], "name": "unit org"}
    r = await review.http.get(f"/v1/review-tasks/{task['id']}", headers=review.reviewer("U1"))
    assert r.status_code == 200 and r.json()["months"] == 6 and r.json()["unit"] == task["unit"]
    # the unit approves: the authority's task says the same
    assert (await review.decide(task, "U1")).status_code == 200
    authority = await review.open_task(claim_id)
    assert authority["stage"] == "authority"
    for key in ("start_date", "end_date", "months", "expected_credits", "warnings", "unit"):
        assert authority[key] == task[key], key

    # an event without them (written before they existed): nulls and empty lists
    plain = await review.open_task(await review.submit("U1"))
    assert (plain["start_date"], plain["end_date"], plain["months"]) == (None, None, None)
    assert plain["warnings"] == [] and plain["expected_credits"] == []


async def test_queue_filters_sort_and_total(review: Review) -> None:
    label = f"UQ{uuid.uuid4().hex[:4]}"
    await review.add(label, "unit", "D1")
    made = []
    for name, masked, category, verified in (
        ("张三", "370402********0012", "training", True),
        ("张四", "370402********0034", "study", False),
        ("李五", "370403********0056", "training", False),
        ("王六", "370402********7890", "achievement", True),
    ):
        made.append(
            await review.submit(
                label,
                person_name=name,
                id_number_masked=masked,
                category=category,
                verified=verified,
            )
        )
    whole = await queue(review, label)
    assert [t["claim_id"] for t in whole["items"]] == made and whole["total"] == 4
    newest = await queue(review, label, sort="-created_at")
    assert [t["claim_id"] for t in newest["items"]] == made[::-1]

    def claims(body: dict[str, Any]) -> list[str]:
        return [t["claim_id"] for t in body["items"]]

    by_name = await queue(review, label, q="张")
    assert claims(by_name) == made[:2] and by_name["total"] == 2
    assert claims(await queue(review, label, q="0056")) == [made[2]]
    assert claims(await queue(review, label, q="370402********7890")) == [made[3]]
    assert claims(await queue(review, label, category="training")) == [made[0], made[2]]
    only_verified = await queue(review, label, verified_evidence="true")
    assert claims(only_verified) == [made[0], made[3]] and only_verified["total"] == 2
    both = await queue(review, label, q="张", verified_evidence="false")
    assert claims(both) == [made[1]] and both["total"] == 1

    first = await queue(review, label, limit=3)
    assert first["total"] == 4 and len(first["items"]) == 3 and first["next_cursor"]
    rest = await queue(review, label, limit=3, cursor=first["next_cursor"])
    assert claims(rest) == [made[3]] and rest["total"] == 4 and rest["next_cursor"] is None
    back = await queue(review, label, limit=3, sort="newest")
    after = await queue(review, label, limit=3, sort="newest", cursor=back["next_cursor"])
    assert claims(back) + claims(after) == made[::-1]

    # another unit's reviewer sees none of them, and its total says so
    assert (await queue(review, "U2", q="张"))["total"] == 0
    r = await review.http.get(
        "/v1/review-tasks", params={"sort": "sideways"}, headers=review.reviewer(label)
    )
    assert_problem(r, 422, "validation_error")


async def test_a_queue_page_costs_the_same_statements_whatever_its_rows(review: Review) -> None:
    label = f"UB{uuid.uuid4().hex[:4]}"
    await review.add(label, "unit", "D1")
    for i in range(6):
        await review.submit(label, project_id=str(uuid.uuid4()), person_name=f"张{i}")
    engine = review.app.state.service.engine.sync_engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    costs = {}
    event.listen(engine, "before_cursor_execute", count)
    try:
        for limit in (1, 100):
            statements.clear()
            body = await queue(review, label, limit=limit)
            assert body["total"] == 6
            costs[limit] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert costs[1] == costs[100] <= 8, costs
