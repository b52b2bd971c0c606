"""The review pages in process: the queue's calls do not grow with its rows, bulk decisions
show every item's result, a refusal changes nothing, a form without the CSRF token is refused."""

from __future__ import annotations

import re

from console.tests.conftest import Console


def titles_in(html: str) -> list[str]:
    return re.findall(r'<a href="/review/tasks/[^"]+">([^<]+)</a>', html)


async def test_a_queue_page_makes_the_same_calls_whatever_its_row_count(console: Console) -> None:
    await console.review.submit("U1")
    await console.sign_in("unit_admin", "U1")
    before = console.calls
    small = await console.http.get("/review")
    assert small.status_code == 200 and len(titles_in(small.text)) == 1
    calls_for_one = console.calls - before

    for _ in range(40):
        await console.review.submit("U1")
    before = console.calls
    large = await console.http.get("/review")
    assert large.status_code == 200 and len(titles_in(large.text)) == 41
    assert "共 41 条待审核" in large.text
    assert console.calls - before == calls_for_one == 1


async def test_the_queue_filters_by_person_and_pages(console: Console) -> None:
    await console.review.submit("U1", person_name="李明")
    await console.review.submit("U1", person_name="王芳", id_number_masked="370402********0029")
    await console.sign_in("unit_admin", "U1")
    by_name = await console.http.get("/review", params={"person": "王芳"})
    assert "共 1 条待审核" in by_name.text and "王芳" in by_name.text and "李明" not in by_name.text
    by_id = await console.http.get("/review", params={"person": "0029"})
    assert "共 1 条待审核" in by_id.text and "王芳" in by_id.text


async def test_bulk_approval_shows_every_item_and_the_failure(console: Console) -> None:
    first = await console.review.open_task(await console.review.submit("U1"))
    second = await console.review.open_task(await console.review.submit("U1"))
    decided = await console.review.decide(second, "U1")  # someone else was quicker
    assert decided.status_code == 200
    await console.sign_in("unit_admin", "U1")
    token = await console.csrf("/review")
    r = await console.http.post(
        "/review/bulk",
        data={
            "csrf_token": token,
            "decision": "approve",
            "task_id": [first["id"], second["id"]],
            f"title_{first['id']}": "第一条",
            f"title_{second['id']}": "第二条",
        },
    )
    assert r.status_code == 200, r.text
    assert "成功 1 条，未能处理 1 条" in r.text
    assert 'role="alert"' in r.text and "该申报已处理，不能重复审核" in r.text
    assert "第一条" in r.text and "第二条" in r.text
    [after] = [t for t in await console.review.tasks(first["claim_id"]) if t["stage"] == "unit"]
    assert (after["status"], after["decision"]) == ("decided", "approve")


async def test_bulk_rejection_needs_a_reason_and_changes_nothing(console: Console) -> None:
    task = await console.review.open_task(await console.review.submit("U1"))
    await console.sign_in("unit_admin", "U1")
    token = await console.csrf("/review")
    r = await console.http.post(
        "/review/bulk", data={"csrf_token": token, "decision": "reject", "task_id": task["id"]}
    )
    assert r.status_code == 422
    assert 'role="alert"' in r.text and "批量驳回必须填写驳回理由" in r.text
    assert f'value="{task["id"]}" id="pick-{task["id"]}" checked' in r.text  # still ticked
    [after] = await console.review.tasks(task["claim_id"])
    assert after["status"] == "open"


async def test_a_rejection_without_a_reason_is_refused_on_the_task_page(console: Console) -> None:
    task = await console.review.open_task(await console.review.submit("U1"))
    await console.sign_in("unit_admin", "U1")
    token = await console.csrf(f"/review/tasks/{task['id']}")
    r = await console.http.post(
        f"/review/tasks/{task['id']}/decision",
        data={"csrf_token": token, "decision": "reject", "reason": "  "},
    )
    assert r.status_code == 422 and "驳回时必须填写驳回理由" in r.text
    [after] = await console.review.tasks(task["claim_id"])
    assert after["status"] == "open"


async def test_a_form_without_the_csrf_token_is_refused(console: Console) -> None:
    task = await console.review.open_task(await console.review.submit("U1"))
    await console.sign_in("unit_admin", "U1")
    r = await console.http.post(
        f"/review/tasks/{task['id']}/decision", data={"decision": "approve"}
    )
    assert r.status_code == 403 and 'role="alert"' in r.text and "页面已过期" in r.text
    forged = await console.http.post(
        f"/review/tasks/{task['id']}/decision",
        data={"decision": "approve", "csrf_token": "not-the-token"},
    )
    assert forged.status_code == 403
    [after] = await console.review.tasks(task["claim_id"])
    assert after["status"] == "open"


async def test_the_authority_sees_its_units_queues(console: Console) -> None:
    await console.review.submit("U1")
    await console.sign_in("district_admin", "D1")
    r = await console.http.get("/review/progress")
    assert r.status_code == 200, r.text
    assert "审核进度" in r.text and "导出审核记录" in r.text
    export = await console.http.get(
        "/review/decisions", params={"from": "2026-01-01", "to": "2026-12-31", "format": "csv"}
    )
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")


async def test_a_page_for_another_role_is_refused_in_chinese(console: Console) -> None:
    await console.sign_in("unit_admin", "U1")
    r = await console.http.get("/review/progress")
    assert r.status_code == 403 and "当前角色无权进行此操作" in r.text
