"""The org directory as the console's 机构管理 tree reads it (issue 18 item 6): ``GET /v1/orgs``
browsed by ``parent_id``, searched by ``q`` (part of a name or code), filtered by ``active``,
with ``total`` and each org's number of direct children."""

from __future__ import annotations

import uuid
from typing import Any

from services.review.tests.support import Review


async def orgs(review: Review, **params: Any) -> dict[str, Any]:
    r = await review.http.get("/v1/orgs", params=params, headers=review.city)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_browse_search_and_total(review: Review) -> None:
    tag = uuid.uuid4().hex[:6]
    r = await review.http.post(
        "/v1/orgs",
        json={
            "code": f"D-{tag}",
            "name": f"峄城区人社局{tag}",
            "type": "district",
            "parent_id": review.orgs["C"],
        },
        headers=review.city,
    )
    assert r.status_code == 201, r.text
    district = r.json()["id"]
    units = []
    for i, name in enumerate(("峄城区人民医院", "峄城区中医院", "峄城区第一中学")):
        r = await review.http.post(
            "/v1/orgs",
            json={
                "code": f"U-{tag}-{i}",
                "name": f"{name}{tag}",
                "type": "unit",
                "parent_id": district,
            },
            headers=review.city,
        )
        assert r.status_code == 201, r.text
        units.append(r.json()["id"])

    under = await orgs(review, parent_id=district)
    assert [o["id"] for o in under["items"]] == units and under["total"] == 3
    assert all(o["children"] == 0 for o in under["items"])
    [listed] = (await orgs(review, q=f"峄城区人社局{tag}"))["items"]
    assert listed["id"] == district and listed["children"] == 3

    hospitals = await orgs(review, q=f"医院{tag}")
    assert {o["id"] for o in hospitals["items"]} == set(units[:2]) and hospitals["total"] == 2
    by_code = await orgs(review, q=f"U-{tag}-2")
    assert [o["id"] for o in by_code["items"]] == [units[2]]

    r = await review.http.patch(f"/v1/orgs/{units[2]}", json={"active": False}, headers=review.city)
    assert r.status_code == 200, r.text
    active = await orgs(review, parent_id=district, active="true")
    assert [o["id"] for o in active["items"]] == units[:2] and active["total"] == 2
    inactive = await orgs(review, parent_id=district, active="false")
    assert [o["id"] for o in inactive["items"]] == [units[2]]

    first = await orgs(review, parent_id=district, limit=2)
    assert first["total"] == 3 and len(first["items"]) == 2
    rest = await orgs(review, parent_id=district, limit=2, cursor=first["next_cursor"])
    assert [o["id"] for o in rest["items"]] == [units[2]] and rest["next_cursor"] is None
    # nothing matches: an empty page, total 0
    assert await orgs(review, q=f"没有这个机构{tag}") == {
        "items": [],
        "next_cursor": None,
        "total": 0,
    }
