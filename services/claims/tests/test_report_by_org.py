"""Compliance one row per org (``GET /v1/reports/compliance/by-org``), the console's 统计报表 table
and chart (issue 18 item 4): persons, compliant or not, the hours still missing and who falls
short per subject, each org over its whole subtree, in the caller's scope — on the ledger of
``test_reports`` (revoked hours, last year's hours and pending claims never count)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.claims.tests.harness import Stack, claims_stack
from services.claims.tests.test_reports import seed
from tests.support import assert_problem


@pytest.fixture(scope="module")
async def city(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("by-org")) as w:
        await seed(w)
        yield w


async def by_org(w: Stack, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await w.http.get(
        "/v1/reports/compliance/by-org", params={"year": 2026, **params}, headers=headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["persons"],
        row["compliant"],
        row["non_compliant"],
        row["gaps"]["public"],
        row["gaps"]["professional"],
        row["short"]["public"],
        row["short"]["professional"],
    )


async def test_the_city_by_district_and_department(city: Stack) -> None:
    body = await by_org(city, city.city)
    assert [r["code"] for r in body["rows"]] == ["HEALTH", "SZ", "TZ"]
    rows = {r["code"]: r for r in body["rows"]}
    # 滕州: p1, p5 compliant; p2 short 10 professional; p3 nothing; p7 only last year's
    assert figures(rows["TZ"]) == (5, 2, 3, 60.0, 130.0, 2, 3)
    assert rows["TZ"]["compliance_rate"] == 0.4 and rows["TZ"]["type"] == "district"
    # 卫健委: p4's revoked 20 hours do not count
    assert figures(rows["HEALTH"]) == (1, 0, 1, 0.0, 20.0, 0, 1)
    assert figures(rows["SZ"]) == (1, 1, 0, 0.0, 0.0, 0, 0)
    assert figures(body["total"]) == (7, 3, 4, 60.0, 150.0, 2, 4)
    assert body["total"]["name"] == "合计" and body["required"]["public"] == 30


async def test_a_district_by_unit_and_a_unit_alone(city: Stack) -> None:
    district = city.auth("district_admin", org="tz")
    body = await by_org(city, district)
    rows = {r["code"]: figures(r) for r in body["rows"]}
    assert rows == {
        "AGENCY_TZ": (1, 1, 0, 0.0, 0.0, 0, 0),
        "UNIT_HOSP": (3, 1, 2, 30.0, 70.0, 1, 2),
        "UNIT_SCHOOL": (1, 0, 1, 30.0, 60.0, 1, 1),
    }
    assert body["org"]["id"] == city.orgs["tz"]
    unit = await by_org(city, city.auth("unit_admin", org="unit_hosp"))
    assert [(r["code"], figures(r)) for r in unit["rows"]] == [
        ("UNIT_HOSP", (3, 1, 2, 30.0, 70.0, 1, 2))
    ]
    # the city asks about one district: the same rows as its admin sees
    same = await by_org(city, city.city, org_id=city.orgs["tz"])
    assert same["rows"] == body["rows"]


async def test_csv_download_and_refusals(city: Stack) -> None:
    r = await city.http.get(
        "/v1/reports/compliance/by-org",
        params={"year": 2026, "format": "csv"},
        headers=city.city,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "compliance-by-org-2026-city.csv" in r.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["org_id", "code", "name"]
    assert [row[1] for row in table[1:]] == ["HEALTH", "SZ", "TZ", ""]
    assert table[-1][2] == "合计" and table[-1][4] == "7"
    r = await city.http.get(
        "/v1/reports/compliance/by-org",
        params={"year": 2026, "format": "xlsx"},
        headers=city.city,
    )
    assert r.status_code == 200 and r.content[:2] == b"PK"

    r = await city.http.get(
        "/v1/reports/compliance/by-org",
        params={"year": 2026, "org_id": city.orgs["tz"]},
        headers=city.auth("district_admin", org="sz"),
    )
    assert_problem(r, 404, "org_not_found")
    r = await city.http.get(
        "/v1/reports/compliance/by-org",
        params={"year": 2026},
        headers=city.auth("personnel", person="p1"),
    )
    assert_problem(r, 403, "role_not_allowed")


async def test_orgs_without_staff_are_no_rows_of_the_city(city: Stack) -> None:
    """A CE base and the exam centre hold no staff: the city's report by org lists neither."""
    for kind in ("provider", "exam_center"):
        await city.add_org(kind)
    body = await by_org(city, city.city)
    assert [r["code"] for r in body["rows"]] == ["HEALTH", "SZ", "TZ"]
    assert {r["type"] for r in body["rows"]} <= {"district", "department"}
