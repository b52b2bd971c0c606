"""Self-appraising units (issue 20 item 10, notice 五(二) 职称自主评聘单位): the flag review keeps
reaches the claims replica by ``org.upserted``, is shown on the compliance report (JSON rows, the
summary's orgs, the CSV column), and their staff's hours still go to the province."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest

from libs.common.events import OrgUpserted, topic_of
from services.claims.tests.harness import Stack, claims_stack

REVIEW = topic_of("review")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("self-appraising")) as s:
        s.orgs["district"] = await s.add_org("district")
        for label, flag in (("university", True), ("school", False)):
            event = OrgUpserted(
                org_id=label, code=label.upper(), name=label, type="unit",
                parent_id=s.orgs["district"], self_appraising=flag,
            )  # fmt: skip
            await s.publish(REVIEW, event, subject=label)
        yield s


async def test_the_flag_is_on_the_report_and_the_hours_still_reach_the_province(
    stack: Stack,
) -> None:
    lecturer = await stack.register("university")
    teacher = await stack.register("school")
    body = {
        "year": 2026,
        "category": "study",
        "title": "高校教师岗位培训",
        "hours": 12,
        "evidence_ids": [await stack.upload(lecturer)],
    }
    claim = await stack.approve(await stack.submit(lecturer, body))
    # credited and sent on to the province like anyone's (sync registers claim.credited)
    credited = [e for e in await stack.outbox(claim["id"]) if e.type == "claim.credited"]
    assert len(credited) == 1 and credited[0].data["credits"][0]["hours"] == 12
    assert (await stack.claim(claim["id"]))["sync_status"] == "pending"

    city = stack.auth("city_admin")
    r = await stack.http.get("/v1/reports/compliance", params={"year": 2026}, headers=city)
    assert r.status_code == 200, r.text
    flags = {i["id"]: i["self_appraising"] for i in r.json()["items"]}
    assert flags == {lecturer.id: True, teacher.id: False}
    orgs = {o["org_id"]: o["self_appraising"] for o in r.json()["summary"]["by_org"]}
    assert orgs == {"university": True, "school": False}
    r = await stack.http.get(
        "/v1/reports/compliance", params={"year": 2026, "format": "csv"}, headers=city
    )
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {row["person_id"]: row["self_appraising"] for row in rows} == {
        lecturer.id: "True", teacher.id: "False"
    }  # fmt: skip

    # the report by org (one row per org under the district) shows it as well
    r = await stack.http.get(
        "/v1/reports/compliance/by-org",
        params={"year": 2026, "org_id": stack.orgs["district"]},
        headers=city,
    )
    assert r.status_code == 200, r.text
    assert {row["org_id"]: row["self_appraising"] for row in r.json()["rows"]} == {
        "university": True, "school": False
    }  # fmt: skip
    assert r.json()["total"]["self_appraising"] is False

    # review clears the flag: the replica follows
    event = OrgUpserted(
        org_id="university", code="UNIVERSITY", name="university", type="unit",
        parent_id=stack.orgs["district"],
    )  # fmt: skip
    await stack.publish(REVIEW, event, subject="university")
    r = await stack.http.get("/v1/reports/compliance", params={"year": 2026}, headers=city)
    assert {i["id"]: i["self_appraising"] for i in r.json()["items"]}[lecturer.id] is False
