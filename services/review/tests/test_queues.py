"""Reviewer queues against a hand-computed fixture: ages in Chinese working days (Beijing dates),
overdue counts against the SLA, the task filters sorted oldest first, bulk approval limited to
verified evidence, and the export of an authority's decisions as CSV and XLSX.

Today is Friday 2026-11-27 (Beijing); November 2026 has no public holiday, so the working days
are Monday to Friday. Ages (working days after the arrival day, up to today):
  11-27 → 0; 11-20 (Fri) → 5; 11-13 (Fri) → 10; 11-12 (Thu) → 11; 11-01 (Sun) → 20.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from services.review.models import ReviewTask
from services.review.tests.support import Review
from tests.support import assert_problem

TODAY_UTC_NOON_BEIJING = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
# label → (org, stage, arrived at (UTC), expected age in working days)
FIXTURE: dict[str, tuple[str, str, datetime, int]] = {
    "a": ("UQ1", "unit", datetime(2026, 11, 27, 1, 0, tzinfo=UTC), 0),
    "b": ("UQ1", "unit", datetime(2026, 11, 20, 2, 0, tzinfo=UTC), 5),
    # 00:30 on 11-13 in Beijing, still 11-12 in UTC: the Beijing day counts → 10, not overdue
    "c": ("UQ1", "unit", datetime(2026, 11, 12, 16, 30, tzinfo=UTC), 10),
    # 23:30 on 11-12 in Beijing → 11, overdue
    "d": ("UQ1", "unit", datetime(2026, 11, 12, 15, 30, tzinfo=UTC), 11),
    "e": ("UQ2", "unit", datetime(2026, 11, 1, 2, 0, tzinfo=UTC), 20),
    "f": ("DQ", "authority", datetime(2026, 11, 13, 2, 0, tzinfo=UTC), 10),
    "g": ("DQ", "authority", datetime(2026, 11, 12, 2, 0, tzinfo=UTC), 11),
}


@pytest.fixture(scope="module")
async def queued(review: Review) -> dict[str, str]:
    """The fixture's tasks (label → claim id), arrival times written into the database."""
    review.app.state.service.clock = lambda: TODAY_UTC_NOON_BEIJING
    await review.add("DQ", "district", "C")
    await review.add("UQ1", "unit", "DQ")
    await review.add("UQ2", "unit", "DQ")
    claims: dict[str, str] = {}
    extra: dict[str, dict[str, Any]] = {
        "a": {"verified": False},
        "b": {"person_name": "李四"},
        "c": {"id_number_masked": "370402********123X"},
        "d": {"category": "study"},
    }
    for label, (org, stage, _, _) in FIXTURE.items():
        first = "UQ1" if stage == "authority" else org
        claims[label] = await review.submit(first, **extra.get(label, {}))
        if stage == "authority":
            task = await review.open_task(claims[label])
            assert (await review.decide(task, first)).status_code == 200
    async with review.app.state.service.sessionmaker() as session:
        for label, (_, _, arrived, _) in FIXTURE.items():
            await session.execute(
                update(ReviewTask)
                .where(ReviewTask.claim_id == claims[label], ReviewTask.status == "open")
                .values(created_at=arrived)
            )
        await session.commit()
    return claims


async def queues(review: Review, headers: dict[str, str], **params: Any) -> Any:
    return await review.http.get(
        "/v1/review-queues", params={"org_id": review.orgs["DQ"], **params}, headers=headers
    )


async def test_queue_figures_match_the_hand_computed_fixture(
    review: Review, queued: dict[str, str]
) -> None:
    r = await queues(review, review.reviewer("DQ"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["as_of"], body["sla_working_days"]) == ("2026-11-27", 10)
    figures = {
        o["org_id"]: (o["open"], o["oldest_age_working_days"], o["overdue"]) for o in body["orgs"]
    }
    assert figures == {
        review.orgs["DQ"]: ({"unit": 0, "authority": 2}, 11, 1),
        review.orgs["UQ1"]: ({"unit": 4, "authority": 0}, 11, 1),
        review.orgs["UQ2"]: ({"unit": 1, "authority": 0}, 20, 1),
    }
    tighter = (await queues(review, review.city, sla_working_days=5)).json()
    overdue = {o["org_id"]: o["overdue"] for o in tighter["orgs"]}
    assert overdue == {review.orgs["DQ"]: 2, review.orgs["UQ1"]: 2, review.orgs["UQ2"]: 1}


async def test_queues_are_for_the_authority_itself(review: Review, queued: dict[str, str]) -> None:
    for headers in (review.reviewer("D1"), review.reviewer("UQ1"), review.reviewer("P")):
        assert_problem(await queues(review, headers), 404, "org_not_found")
    assert_problem(await queues(review, review.city, sla_working_days=0), 422, "validation_error")


async def listed(review: Review, headers: dict[str, str], **params: Any) -> list[str]:
    r = await review.http.get(
        "/v1/review-tasks", params={"status": "open", **params}, headers=headers
    )
    assert r.status_code == 200, r.text
    return [t["claim_id"] for t in r.json()["items"]]


async def test_filters_sort_oldest_first(review: Review, queued: dict[str, str]) -> None:
    unit = review.reviewer("UQ1")
    c = queued
    assert await listed(review, unit) == [c["d"], c["c"], c["b"], c["a"]]
    assert await listed(review, unit, min_age=5) == [c["d"], c["c"], c["b"]]
    assert await listed(review, unit, min_age=11) == [c["d"]]
    assert await listed(review, review.reviewer("DQ"), min_age=11) == [c["g"]]
    assert await listed(review, unit, person="李") == [c["b"]]
    assert await listed(review, unit, person="123X") == [c["c"]]
    assert await listed(review, unit, person="370402********123x") == [c["c"]]
    assert await listed(review, unit, category="study") == [c["d"]]
    assert await listed(review, unit, verified_evidence="false") == [c["a"]]
    assert await listed(review, unit, verified_evidence="true", min_age=6) == [c["d"], c["c"]]
    city = await listed(review, review.city, min_age=20)
    assert c["e"] in city and c["d"] not in city


async def test_bulk_approval_can_be_limited_to_verified_evidence(review: Review) -> None:
    verified = await review.open_task(await review.submit("U1", verified=True))
    unverified = await review.open_task(await review.submit("U1", verified=False))
    r = await review.http.post(
        "/v1/review-tasks/decisions",
        json={
            "task_ids": [verified["id"], unverified["id"]],
            "decision": "approve",
            "only_verified": True,
        },
        headers=review.reviewer("U1"),
    )
    results = {x["task_id"]: x for x in r.json()["results"]}
    assert results[verified["id"]]["status"] == 200
    assert (results[unverified["id"]]["status"], results[unverified["id"]]["code"]) == (
        422,
        "evidence_not_verified",
    )
    assert (await review.open_task(unverified["claim_id"]))["id"] == unverified["id"]


# === export of decisions ====================================================================


async def export(review: Review, headers: dict[str, str], fmt: str, days: tuple[int, int]) -> Any:
    today = review.app.state.service.today()
    return await review.http.get(
        "/v1/review-decisions",
        params={
            "org_id": review.orgs["DQ"],
            "from": (today + timedelta(days=days[0])).isoformat(),
            "to": (today + timedelta(days=days[1])).isoformat(),
            "format": fmt,
        },
        headers=headers,
    )


async def test_export_of_a_districts_decisions(review: Review, queued: dict[str, str]) -> None:
    g = await review.open_task(queued["g"])
    assert (await review.decide(g, "DQ", "reject", "=HYPERLINK(证书过期)")).status_code == 200
    elsewhere = await review.submit("U2")
    assert (await review.decide(await review.open_task(elsewhere), "U2")).status_code == 200

    r = await export(review, review.reviewer("DQ"), "csv", (-1, 1))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    decided = [(x["claim_id"], x["stage"], x["decision"]) for x in rows]
    # the unit stage of f and g at UQ1, then the district's rejection of g; nothing of U2
    # (the test clock stands still: every decision has the same time, so compare as sets)
    assert sorted(decided) == sorted(
        [
            (queued["f"], "unit", "approve"),
            (queued["g"], "unit", "approve"),
            (queued["g"], "authority", "reject"),
        ]
    )
    [reject] = [x for x in rows if x["decision"] == "reject"]
    assert reject["reason"] == "'=HYPERLINK(证书过期)"  # no formula reaches a spreadsheet
    assert (reject["person_name"], reject["reviewer"]) == (
        "张三",
        "district_admin:" + review.orgs["DQ"],
    )
    assert reject["org_code"] and float(reject["requested_hours"]) == 16
    assert reject["decided_at"] == "2026-11-27T12:00:00+08:00"  # the service clock, Beijing

    x = await export(review, review.city, "xlsx", (-1, 1))
    assert x.status_code == 200
    sheet = load_workbook(io.BytesIO(x.content), read_only=True).worksheets[0]
    values = [list(v) for v in sheet.iter_rows(values_only=True)]
    assert values[0][:3] == ["decided_at", "stage", "decision"]
    assert [(v[7], v[1], v[2]) for v in values[1:]] == decided
    assert [v[3] for v in values if v[2] == "reject"] == [
        "=HYPERLINK(证书过期)"
    ]  # text, no formula

    before = await export(review, review.reviewer("DQ"), "csv", (-10, -2))
    assert len(list(csv.DictReader(io.StringIO(before.content.decode("utf-8-sig"))))) == 0
    for headers in (review.reviewer("D1"), review.reviewer("UQ1")):
        assert_problem(await export(review, headers, "csv", (-1, 1)), 404, "org_not_found")
    assert_problem(await export(review, review.city, "csv", (1, -1)), 422, "invalid_period")


async def test_each_open_task_shows_its_age_in_working_days(
    review: Review, queued: dict[str, str]
) -> None:
    """The 待审核 queue's age column: the same working-day count as the queues' oldest age
    (tasks an earlier test of this module decided show none)."""
    shown = 0
    for label, (_, _, _, age) in FIXTURE.items():
        for task in await review.tasks(queued[label]):
            r = await review.http.get(f"/v1/review-tasks/{task['id']}", headers=review.city)
            if task["status"] == "open":
                assert task["age_working_days"] == age, label
                assert r.json()["age_working_days"] == age, label
                shown += 1
            else:
                assert task["age_working_days"] is None and r.json()["age_working_days"] is None
    assert shown >= 4
