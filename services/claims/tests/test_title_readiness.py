"""Title-application readiness (GET /v1/persons/{id}/title-readiness) on a real claims service:
the deadline 5 Chinese working days before the application, around the real 2026 holidays, and
a weekends-only fallback with a warning where the holiday data ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.claims.tests.harness import Stack, claims_stack


@pytest.fixture(scope="module")
async def applicant(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("readiness")) as w:
        await w.add_orgs(
            ("tz", "滕州市人社局", "district", None),
            ("unit_hosp", "滕州市中心人民医院", "unit", "tz"),
            ("unit_school", "滕州市第一中学", "unit", "tz"),
        )
        await w.register_labelled("p1", "张三", "unit_hosp", 11)
        await w.register_labelled("p2", "李四", "unit_school", 12)
        await w.credit("p1", "public", "30", at=datetime(2026, 9, 10, 2, 0, tzinfo=UTC))
        # 2026-09-24 23:30 in Beijing: on the deadline of an application on 2026-10-09
        await w.credit(
            "p1", "professional", "50", source="claim", at=datetime(2026, 9, 24, 15, 30, tzinfo=UTC)
        )
        # 2026-09-25 00:10 in Beijing: one day late for it
        await w.credit(
            "p1", "professional", "10", source="claim", at=datetime(2026, 9, 24, 16, 10, tzinfo=UTC)
        )
        # revoked hours never count, whenever they were credited
        await w.credit(
            "p1",
            "professional",
            "20",
            source="claim",
            at=datetime(2026, 9, 1, tzinfo=UTC),
            revoked=True,
        )
        yield w


async def readiness(w: Stack, person: str, headers: dict[str, str], **params: Any) -> Any:
    return await w.http.get(
        f"/v1/persons/{w.persons[person]}/title-readiness", params=params, headers=headers
    )


async def test_deadline_before_golden_week_and_mid_autumn(applicant: Stack) -> None:
    # 10-09 back over National Day (10-01..07) and Mid-autumn (09-25..27):
    # 10-08, 09-30, 09-29, 09-28, 09-24
    response = await readiness(
        applicant, "p1", applicant.auth("city_admin"), year=2026, application_date="2026-10-09"
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "person_id": applicant.persons["p1"],
        "year": 2026,
        "application_date": "2026-10-09",
        "deadline": "2026-09-24",
        "working_days": 5,
        "required": {"public": 30.0, "professional": 60.0},
        "compliant_now": True,
        "compliant_by_deadline": False,
        "compliant_if_pending_approved": False,
        "credited_now": {"public": 30.0, "professional": 60.0},
        "credited_by_deadline": {"public": 30.0, "professional": 50.0},
        "subjects": {
            "public": {
                "required": 30.0,
                "approved": 30.0,
                "pending_in_time": 0.0,
                "too_late": 0.0,
                "missing": 0.0,
                "missing_if_pending_approved": 0.0,
            },
            "professional": {
                "required": 60.0,
                "approved": 50.0,
                "pending_in_time": 0.0,
                "too_late": 10.0,
                "missing": 10.0,
                "missing_if_pending_approved": 10.0,
            },
        },
        "warnings": [],
    }


async def test_adjusted_working_saturday_counts(applicant: Stack) -> None:
    # 10-12 back: Sat 10-10 is an adjusted working day: 10-10, 10-09, 10-08, 09-30, 09-29
    body = (
        await readiness(
            applicant, "p1", applicant.auth("personnel", person="p1"), application_date="2026-10-12"
        )
    ).json()
    assert (body["year"], body["deadline"]) == (2026, "2026-09-29")
    assert body["credited_by_deadline"] == {"public": 30.0, "professional": 60.0}
    assert body["compliant_by_deadline"] is True
    assert body["warnings"] == []


async def test_date_beyond_the_holiday_data_falls_back_with_a_warning(applicant: Stack) -> None:
    # 2027 has no official schedule in chinesecalendar: weekends only, 01-07 back to Fri 01-01
    response = await readiness(
        applicant, "p1", applicant.auth("city_admin"), year=2026, application_date="2027-01-08"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deadline"] == "2027-01-01"
    assert body["compliant_by_deadline"] is True
    assert any("2027 holiday schedule is not available" in w for w in body["warnings"])
    # the rule year defaults to the application's year, and 2027 has no rules yet: a clear 422
    no_rules = await readiness(
        applicant, "p1", applicant.auth("city_admin"), application_date="2027-01-08"
    )
    assert no_rules.status_code == 422 and no_rules.json()["code"] == "unknown_rule_year"


async def test_warnings_for_a_future_deadline_and_one_before_the_year(applicant: Stack) -> None:
    future = (
        await readiness(
            applicant, "p1", applicant.auth("city_admin"), application_date="2026-12-31"
        )
    ).json()  # the service clock says 2026-12-20
    assert future["deadline"] == "2026-12-24"
    assert any("has not passed yet" in w for w in future["warnings"])
    early = (
        await readiness(
            applicant, "p1", applicant.auth("city_admin"), application_date="2026-01-06"
        )
    ).json()
    assert early["deadline"] == "2025-12-29"
    assert early["credited_by_deadline"] == {"public": 0.0, "professional": 0.0}
    assert any("before the rule year 2026" in w for w in early["warnings"])


@pytest.mark.parametrize("bad", ["2026-13-01", "tomorrow", "2026/10/09", ""])
async def test_bad_dates_are_a_422_problem(applicant: Stack, bad: str) -> None:
    response = await readiness(applicant, "p1", applicant.auth("city_admin"), application_date=bad)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_date"


async def test_missing_application_date_is_a_422(applicant: Stack) -> None:
    response = await readiness(applicant, "p1", applicant.auth("city_admin"), year=2026)
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_scope_is_that_of_the_person(applicant: Stack) -> None:
    params = {"year": 2026, "application_date": "2026-10-09"}
    for allowed in (
        applicant.auth("personnel", person="p1"),
        applicant.auth("unit_admin", org="unit_hosp"),
        applicant.auth("district_admin", org="tz"),
    ):
        assert (await readiness(applicant, "p1", allowed, **params)).status_code == 200
    for refused in (
        applicant.auth("personnel", person="p2"),
        applicant.auth("unit_admin", org="unit_school"),
        applicant.auth("provider", org="unit_hosp"),
        applicant.auth("system"),  # the e-learning platform's integration reads no person
        applicant.auth("ops"),
    ):
        response = await readiness(applicant, "p1", refused, **params)
        assert response.status_code == 404
        assert response.json()["code"] == "person_not_found"


async def test_a_person_without_hours(applicant: Stack) -> None:
    body = (
        await readiness(
            applicant,
            "p2",
            applicant.auth("unit_admin", org="unit_school"),
            year=2026,
            application_date="2026-10-09",
        )
    ).json()
    assert body["compliant_now"] is False and body["compliant_by_deadline"] is False
    assert body["credited_by_deadline"] == {"public": 0.0, "professional": 0.0}
