"""机构管理 through the console's pages with the real review service behind it: browse and
search the tree, create, rename, move and deactivate an org, import a directory (every row's
result; a file with a bad row imports nothing and names each bad row), and give an unrouted
task to a district — each checked afterwards through review's API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console.tests.city_support import City, alerts, city_console
from services.review.tests.support import csv_bytes


@pytest.fixture
async def city(tmp_path: Path) -> AsyncIterator[City]:
    async with city_console(tmp_path) as running:
        await running.browser.sign_in("city_admin")
        yield running


async def org(city: City, org_id: str) -> dict[str, Any]:
    r = await city.review.http.get(f"/v1/orgs/{org_id}", headers=city.review.city)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def by_code(city: City, code: str) -> list[dict[str, Any]]:
    r = await city.review.http.get("/v1/orgs", params={"q": code}, headers=city.review.city)
    return [o for o in r.json()["items"] if o["code"] == code]


async def test_browse_and_search_the_tree(city: City) -> None:
    review = city.review
    top = await city.browser.get("/orgs")
    assert top.status_code == 200, top.text
    root = await org(city, review.orgs["C"])
    assert root["name"] in top.text
    under_city = await city.browser.get("/orgs", parent_id=review.orgs["C"])
    d1 = await org(city, review.orgs["D1"])
    assert d1["name"] in under_city.text and f"parent_id={d1['id']}" in under_city.text
    row = under_city.text[under_city.text.index(f'parent_id={d1["id"]}"') :].split("</tr>")[0]
    assert '<td data-label="下级机构" class="num">3</td>' in row  # U1, U1b and A1
    under_d1 = await city.browser.get("/orgs", parent_id=d1["id"])
    u1 = await org(city, review.orgs["U1"])
    assert u1["code"] in under_d1.text and root["name"] in under_d1.text  # the breadcrumbs
    found = await city.browser.get("/orgs", q=u1["code"])
    assert u1["name"] in found.text and d1["code"] not in found.text
    nothing = await city.browser.get("/orgs", q="没有这个机构")
    assert "没有找到匹配的机构" in nothing.text


async def test_create_rename_move_and_deactivate(city: City) -> None:
    review = city.review
    d1, d2 = review.orgs["D1"], review.orgs["D2"]
    created = await city.browser.post(
        "/orgs", {"code": "U-NEW-1", "name": "新建医院", "type": "unit", "parent_id": d1}
    )
    page = await city.browser.follow(created)
    assert "已新建机构" in page.text and "新建医院" in page.text
    [new] = await by_code(city, "U-NEW-1")
    assert (new["parent_id"], new["type"], new["active"]) == (d1, "unit", True)

    # a duplicate code: refused on the same page, what was typed kept, nothing created
    refused = await city.browser.post(
        "/orgs", {"code": "U-NEW-1", "name": "另一家医院", "type": "unit", "parent_id": d1}
    )
    assert refused.status_code == 409 and alerts(refused) == ["机构代码已存在。"]
    assert 'value="另一家医院"' in refused.text
    assert len(await by_code(city, "U-NEW-1")) == 1

    renamed = await city.browser.post(
        f"/orgs/{new['id']}", {"action": "rename", "name": "新建人民医院", "code": "U-NEW-2"}
    )
    assert "已保存名称和代码" in (await city.browser.follow(renamed)).text
    assert ((await org(city, new["id"]))["name"], (await org(city, new["id"]))["code"]) == (
        "新建人民医院",
        "U-NEW-2",
    )

    page = await city.browser.get(f"/orgs/{new['id']}")
    assert '<label for="org-parent">上级机构</label>' in page.text
    moved = await city.browser.post(f"/orgs/{new['id']}", {"action": "move", "parent_id": d2})
    assert "已移动" in (await city.browser.follow(moved)).text
    assert (await org(city, new["id"]))["parent_id"] == d2

    # moving a district under a unit: the directory's rule refuses it, nothing moves
    cycle = await city.browser.post(f"/orgs/{d2}", {"action": "move", "parent_id": new["id"]})
    assert cycle.status_code == 422 and alerts(cycle)
    assert (await org(city, d2))["parent_id"] == review.orgs["C"]

    off = await city.browser.post(f"/orgs/{new['id']}", {"action": "deactivate"})
    assert "已停用" in (await city.browser.follow(off)).text
    assert (await org(city, new["id"]))["active"] is False
    on = await city.browser.post(f"/orgs/{new['id']}", {"action": "activate"})
    await city.browser.follow(on)
    assert (await org(city, new["id"]))["active"] is True


async def test_import_reports_every_row_and_is_all_or_nothing(city: City) -> None:
    d1 = await org(city, city.review.orgs["D1"])
    form = await city.browser.get("/orgs/import")
    assert '<label for="import-file">文件</label>' in form.text and ">导入<" in form.text
    good = csv_bytes(
        [
            ("IMP-D", "导入区人社局", "district", (await org(city, city.review.orgs["C"]))["code"]),
            ("IMP-U1", "导入单位一", "unit", "IMP-D"),
            ("IMP-U2", "导入单位二", "unit", d1["code"]),
        ]
    )
    page = await city.browser.post(
        "/orgs/import", files={"file": ("directory.csv", good, "text/csv")}
    )
    assert page.status_code == 200, page.text
    assert "新建 3，更新 0，未变化 0" in page.text and alerts(page) == []
    for code in ("IMP-D", "IMP-U1", "IMP-U2"):
        assert code in page.text and len(await by_code(city, code)) == 1

    bad = csv_bytes(
        [
            ("IMP-U3", "导入单位三", "unit", "IMP-D"),
            ("IMP-U4", "导入单位四", "unit", "NO-SUCH-PARENT"),
            ("IMP-U5", "", "planet", "IMP-D"),
        ]
    )
    page = await city.browser.post("/orgs/import", files={"file": ("bad.csv", bad, "text/csv")})
    assert page.status_code == 422
    assert alerts(page) == ["导入未完成：文件中有错误，全部未导入。"]
    assert "上级机构代码既不在目录中，也不在文件中。" in page.text
    assert "缺少机构名称。" in page.text and "IMP-U5" in page.text
    assert await by_code(city, "IMP-U3") == []  # the good row of a bad file: not imported

    page = await city.browser.post("/orgs/import", {})
    assert page.status_code == 422 and alerts(page) == ["请选择要上传的文件。"]


async def test_an_unrouted_task_is_given_to_a_district(city: City) -> None:
    review = city.review
    await review.add("Dy", "district", "C")
    await review.add("Uy", "unit", "Dy")
    claim_id = await review.submit("Uy")
    assert (await review.decide(await review.open_task(claim_id), "Uy")).status_code == 200
    assert (await review.patch("Dy", active=False)).status_code == 200
    task = await review.open_task(claim_id)
    assert task["org_id"] == "unrouted"

    page = await city.browser.get("/orgs/unrouted")
    assert task["title"] in page.text and f"/orgs/unrouted/{task['id']}/assign" in page.text
    refused = await city.browser.post(f"/orgs/unrouted/{task['id']}/assign", {"org_id": ""})
    assert refused.status_code == 422 and alerts(refused) == ["请选择要分配给的审核机构。"]
    to_inactive = await city.browser.post(
        f"/orgs/unrouted/{task['id']}/assign", {"org_id": review.orgs["Dy"]}
    )
    assert to_inactive.status_code == 422 and alerts(to_inactive)
    assert (await review.open_task(claim_id))["org_id"] == "unrouted"

    assigned = await city.browser.post(
        f"/orgs/unrouted/{task['id']}/assign", {"org_id": review.orgs["D2"]}
    )
    assert "已分配" in (await city.browser.follow(assigned)).text
    assert (await review.open_task(claim_id))["org_id"] == review.orgs["D2"]
