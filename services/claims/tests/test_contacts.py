"""Whom to ask (issue 20 item 8, notice 八 咨询方式): ``GET /v1/me`` answers ``contacts``, the
person's auditing bureau with its number from the year's rule data, the city bureau and the
platform's support line, on a real claims app fed the org tree by ``org.upserted``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.common.events import OrgUpserted, topic_of
from services.claims import rules
from services.claims.tests.harness import Stack, claims_stack

SUPPORT = "0531-68961879"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("contacts")) as s:
        for org_id, code, name, type_, parent in (
            ("city", "ZZ-HRSS", "枣庄市人力资源和社会保障局", "city", None),
            ("tz", "370481", "滕州市人力资源和社会保障局", "district", "city"),
            ("tez", "TEZ", "台儿庄人力资源和社会保障局", "district", "city"),  # by its name
            ("health", "D-HEALTH", "枣庄市卫生健康委员会", "department", "city"),
            ("school", "U-TZ-SCHOOL", "滕州市第一中学", "unit", "tz"),
            ("agency", "A-TEZ", "台儿庄区人才服务中心", "agency", "tez"),
            ("cdc", "U-CITY-CDC", "枣庄市疾病预防控制中心", "unit", "health"),
        ):
            event = OrgUpserted(org_id=org_id, code=code, name=name, type=type_, parent_id=parent)
            await s.publish(topic_of("review"), event, subject=org_id)
        yield s


async def contacts_of(stack: Stack, org_id: str, kind: str = "unit") -> dict[str, Any]:
    person = await stack.register(org_id, kind)
    r = await stack.http.get("/v1/me", headers=person.auth)
    assert r.status_code == 200, r.text
    return dict(r.json()["contacts"])


async def test_a_district_units_person_is_told_the_district_bureau_and_the_support_line(
    stack: Stack,
) -> None:
    contacts = await contacts_of(stack, "school")
    assert contacts["auditing_bureau"] == {
        "name": "滕州市人力资源和社会保障局", "phone": "0632-5513165", "org_id": "tz",
        "topics": None,
    }  # fmt: skip
    assert contacts["city_bureau"]["phone"] == "0632-3314140"
    assert contacts["support"]["phone"] == SUPPORT
    assert "注册、登录、学习、考试、缴费" in contacts["support"]["topics"]


async def test_a_freelancer_is_told_the_agencys_district_found_by_name(stack: Stack) -> None:
    contacts = await contacts_of(stack, "agency", "agency")
    assert contacts["auditing_bureau"]["org_id"] == "tez"
    assert contacts["auditing_bureau"]["phone"] == "0632-6618351"


async def test_a_city_direct_unit_is_told_its_department_and_the_city_bureau(
    stack: Stack,
) -> None:
    contacts = await contacts_of(stack, "cdc")
    assert contacts["auditing_bureau"] == {
        "name": "枣庄市卫生健康委员会", "phone": None, "org_id": "health", "topics": None,
    }  # fmt: skip
    assert contacts["city_bureau"] == {
        "name": "枣庄市人力资源和社会保障局", "phone": "0632-3314140", "org_id": None,
        "topics": None,
    }  # fmt: skip


def test_the_directory_is_the_notices() -> None:
    directory = rules.load_ruleset(2026).contacts
    assert directory is not None
    phones = {b.name: b.phone.removeprefix("0632-") for b in directory.bureaus}
    assert phones == {
        "滕州市人力资源和社会保障局": "5513165",
        "市中区人力资源和社会保障局": "3921736",
        "薛城区人力资源和社会保障局": "4422540",
        "峄城区人力资源和社会保障局": "7507776",
        "台儿庄区人力资源和社会保障局": "6618351",
        "山亭区人力资源和社会保障局": "8823509",
        "高新区社会事务综合服务中心": "8691030",
    }
    assert directory.support.phone == SUPPORT
