"""The org-wide lists the console reads (issue 18 item 6): ``GET /v1/persons?org_id=&q=&cursor=``
and ``GET /v1/claims?org_id=&status=&category=&sort=``, each ``{items, next_cursor, total}`` in the
caller's scope, through the HTTP API of a real claims app.

    city ─┬─ district D1 ─┬─ unit U1  (张三, 张四, 李五)
          │               └─ unit U2  (王六)
          └─ district D2 ─── unit U3  (张七)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from services.claims.tests.harness import Person, Stack, claims_stack, masked
from tests.support import assert_problem


@dataclass
class World:
    stack: Stack
    orgs: dict[str, str] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)

    def admin(self, role: str, org: str) -> dict[str, str]:
        return self.stack.auth(role, org=self.orgs[org])


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with claims_stack(tmp_path) as stack:
        w = World(stack)
        city = await stack.add_org("city")
        for label in ("D1", "D2"):
            w.orgs[label] = await stack.add_org("district", city)
        for label, parent in (("U1", "D1"), ("U2", "D1"), ("U3", "D2")):
            w.orgs[label] = await stack.add_org("unit", w.orgs[parent])
        for name, unit in (("张三", "U1"), ("张四", "U1"), ("李五", "U1"), ("王六", "U2")):
            w.people[name] = await stack.register(w.orgs[unit], name=name)
        w.people["张七"] = await stack.register(w.orgs["U3"], name="张七")
        yield w


async def persons(w: World, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await w.stack.http.get("/v1/persons", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def names(body: dict[str, Any]) -> set[str]:
    return {item["name"] for item in body["items"]}


class TestPersonsList:
    async def test_scope_of_each_admin(self, world: World) -> None:
        unit = await persons(world, world.admin("unit_admin", "U1"))
        assert names(unit) == {"张三", "张四", "李五"} and unit["total"] == 3
        district = await persons(world, world.admin("district_admin", "D1"))
        assert names(district) == {"张三", "张四", "李五", "王六"} and district["total"] == 4
        one_unit = await persons(
            world, world.admin("district_admin", "D1"), org_id=world.orgs["U2"]
        )
        assert names(one_unit) == {"王六"}
        city = await persons(world, world.stack.city)
        assert city["total"] == 5

    async def test_rows_carry_the_masked_number_only(self, world: World) -> None:
        body = await persons(world, world.admin("unit_admin", "U1"), q="张三")
        [row] = body["items"]
        zhang = world.people["张三"]
        assert row["id_number_masked"] == masked(zhang.id_number)
        assert zhang.id_number not in str(body)
        assert row["affiliation"] == {"kind": "unit", "org_id": world.orgs["U1"]}
        assert row["org_name"]

    async def test_search_by_name_and_masked_number(self, world: World) -> None:
        admin = world.admin("district_admin", "D1")
        assert names(await persons(world, admin, q="张")) == {"张三", "张四"}
        wang = world.people["王六"]
        last4 = wang.id_number[-4:]
        assert "王六" in names(await persons(world, admin, q=last4))
        assert names(await persons(world, admin, q=masked(wang.id_number))) == {"王六"}
        assert names(await persons(world, admin, q=wang.id_number)) == {"王六"}
        # the hidden digits (the birth date) are not searchable: the mask keeps them hidden
        assert (await persons(world, admin, q=wang.id_number[6:14]))["total"] == 0
        # 张七 is in D2: never found from D1
        assert (await persons(world, admin, q="张七"))["total"] == 0

    async def test_pages_with_cursor_and_total(self, world: World) -> None:
        admin = world.stack.city
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(5):
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            body = await persons(world, admin, **params)
            assert body["total"] == 5
            seen += [i["id"] for i in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 5

    async def test_refusals(self, world: World) -> None:
        r = await world.stack.http.get(
            "/v1/persons",
            params={"org_id": world.orgs["U3"]},
            headers=world.admin("district_admin", "D1"),
        )
        assert_problem(r, 404, "org_not_found")
        r = await world.stack.http.get("/v1/persons", headers=world.people["张三"].auth)
        assert_problem(r, 403, "role_not_allowed")
        r = await world.stack.http.get(
            "/v1/persons", params={"cursor": "nonsense"}, headers=world.stack.city
        )
        assert r.status_code in (400, 422) and r.json()["code"] == "invalid_cursor"


async def study(w: World, name: str, title: str, hours: float = 2) -> dict[str, Any]:
    person = w.people[name]
    evidence = await w.stack.upload(person)
    return await w.stack.submit(
        person,
        {
            "year": 2026,
            "category": "study",
            "title": title,
            "hours": hours,
            "evidence_ids": [evidence],
        },
    )


async def achievement(w: World, name: str, title: str) -> dict[str, Any]:
    person = w.people[name]
    evidence = await w.stack.upload(person)
    return await w.stack.submit(
        person,
        {
            "year": 2026,
            "category": "achievement",
            "title": title,
            "reference_no": f"CN-PAPER-{evidence[:8]}",
            "evidence_ids": [evidence],
        },
    )


async def claims(w: World, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await w.stack.http.get("/v1/claims", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


class TestClaimsList:
    async def test_org_scope_filters_sort_and_total(self, world: World) -> None:
        a = await study(world, "张三", "单位组织学习一")
        b = await achievement(world, "张四", "论文一篇")
        c = await study(world, "王六", "单位组织学习二")
        d = await study(world, "张七", "单位组织学习三")
        r = await world.stack.http.post(
            f"/v1/claims/{a['id']}/withdraw", headers=world.people["张三"].auth
        )
        assert r.status_code == 200

        district = world.admin("district_admin", "D1")
        everything = await claims(world, district)
        assert [i["id"] for i in everything["items"]] == [a["id"], b["id"], c["id"]]
        assert everything["total"] == 3
        row = everything["items"][1]
        assert row["person"]["name"] == "张四" and row["person"]["org_id"] == world.orgs["U1"]
        assert row["person"]["id_number_masked"] == masked(world.people["张四"].id_number)

        newest = await claims(world, district, sort="-created_at")
        assert [i["id"] for i in newest["items"]] == [c["id"], b["id"], a["id"]]
        in_review = await claims(world, district, status="in_review")
        assert {i["id"] for i in in_review["items"]} == {b["id"], c["id"]}
        assert in_review["total"] == 2
        assert [
            i["id"] for i in (await claims(world, district, category="achievement"))["items"]
        ] == [b["id"]]
        unit = await claims(world, district, org_id=world.orgs["U2"])
        assert [i["id"] for i in unit["items"]] == [c["id"]]
        assert (await claims(world, world.stack.city))["total"] == 4
        assert [
            i["id"] for i in (await claims(world, world.admin("unit_admin", "U3")))["items"]
        ] == [d["id"]]

    async def test_pages_newest_first(self, world: World) -> None:
        made = [await study(world, "张三", f"学习 {i}", 1) for i in range(5)]
        admin = world.admin("unit_admin", "U1")
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(5):
            extra = {"cursor": cursor} if cursor else {}
            body = await claims(world, admin, sort="newest", limit=2, **extra)
            assert body["total"] == 5
            seen += [i["id"] for i in body["items"]]
            if (cursor := body["next_cursor"]) is None:
                break
        assert seen == [c["id"] for c in reversed(made)]

    async def test_personnel_gets_its_own_and_person_id_still_works(self, world: World) -> None:
        mine = await study(world, "张三", "我的学习")
        await study(world, "张四", "别人的学习")
        body = await claims(world, world.people["张三"].auth)
        assert [i["id"] for i in body["items"]] == [mine["id"]] and body["total"] == 1
        by_person = await claims(world, world.stack.city, person_id=world.people["张三"].id)
        assert [i["id"] for i in by_person["items"]] == [mine["id"]]

    async def test_refusals(self, world: World) -> None:
        http, district = world.stack.http, world.admin("district_admin", "D1")
        r = await http.get("/v1/claims", params={"org_id": world.orgs["U3"]}, headers=district)
        assert_problem(r, 404, "org_not_found")
        r = await http.get("/v1/claims", params={"status": "bogus"}, headers=district)
        assert_problem(r, 422, "validation_error")
        r = await http.get("/v1/claims", headers=world.stack.auth("provider", org=world.orgs["U1"]))
        assert_problem(r, 403, "role_not_allowed")


class TestBoundedStatements:
    async def test_a_page_costs_the_same_statements_whatever_its_rows(self, world: World) -> None:
        for i in range(6):
            await study(world, ["张三", "张四", "李五"][i % 3], f"学习 {i}", 1)
        engine = world.stack.app.state.service.engine.sync_engine
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        admin = world.admin("district_admin", "D1")
        costs: dict[tuple[str, int], int] = {}
        event.listen(engine, "before_cursor_execute", count)
        try:
            for path in ("/v1/claims", "/v1/persons"):
                for limit in (1, 100):
                    statements.clear()
                    r = await world.stack.http.get(path, params={"limit": limit}, headers=admin)
                    assert r.status_code == 200
                    costs[(path, limit)] = len(statements)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert costs[("/v1/claims", 1)] == costs[("/v1/claims", 100)] <= 8, costs
        assert costs[("/v1/persons", 1)] == costs[("/v1/persons", 100)] <= 8, costs
