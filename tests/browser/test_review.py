"""The review path in a real browser, as the issue's "Done when" says: the demo unit admin
opens a claim, looks at its evidence and approves it; the district admin approves it; the
claim is approved and registered at the province. Then the refusals: 驳回 without a reason, and
deciding a task someone else decided meanwhile — each checked afterwards through the API."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Page, expect

from ce.demo import PEOPLE
from tests.browser.conftest import ConsoleStack, screenshot
from tests.support import eventually

LI_MING_CLAIM = "数字化管理师（初级）培训班"
WANG_FANG_CLAIM = "急诊医学新进展培训班"


def one_click(page: Page, label: str) -> None:
    page.goto("/login")
    page.get_by_role("button", name=label).click()
    expect(page.get_by_role("heading", name="待审核")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("navigation", name="主导航").get_by_role("button", name="退出").click()
    expect(page.get_by_role("button", name="登录", exact=True)).to_be_visible()


def task_of(stack: ConsoleStack, title: str, **params: str) -> dict[str, Any]:
    with stack.api() as http:
        items = http.get(
            stack.url("review") + "/v1/review-tasks", params={"limit": 500, **params}
        ).json()["items"]
    [task] = [t for t in items if t["title"] == title]
    return dict(task)


def open_from_queue(page: Page, title: str) -> None:
    """The queue, reloaded until the claim arrives (events cross services asynchronously)."""

    def listed() -> bool:
        page.goto("/review")
        return page.get_by_role("link", name=title).count() == 1

    eventually(listed, timeout_s=30, what=f"{title} in the queue")
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()


def test_the_unit_and_the_district_approve_a_claim_that_reaches_the_province(
    page: Page, console_stack: ConsoleStack
) -> None:
    one_click(page, "用人单位管理员：枣庄市立医院")
    expect(page.get_by_role("status").first).to_contain_text("共")
    screenshot(page, "review-queue")
    open_from_queue(page, LI_MING_CLAIM)
    facts = page.get_by_role("region", name="申报内容")
    expect(facts).to_contain_text("16")
    expect(facts).to_contain_text("2026-11-02 至 2026-11-03")
    expect(facts).to_contain_text("李明")
    expect(page.get_by_role("region", name="证明材料")).to_contain_text("已核验")
    screenshot(page, "review-task")

    evidence = page.get_by_role("link", name="查看材料").first
    href = evidence.get_attribute("href")
    assert href
    with page.context.expect_page() as opened:
        evidence.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    viewer.close()
    shown = page.request.get(href)  # what the reviewer's browser receives, with its cookie
    assert shown.status == 200
    assert shown.headers["content-type"] == "application/pdf"
    assert shown.headers["content-security-policy"].startswith("sandbox")
    assert shown.body().startswith(b"%PDF")

    page.get_by_role("button", name="通过", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text(f"已通过：「{LI_MING_CLAIM}」")
    unit_task = task_of(console_stack, LI_MING_CLAIM, stage="unit")
    assert (unit_task["status"], unit_task["decision"]) == ("decided", "approve")  # the API
    sign_out(page)

    one_click(page, "区（市）人社局审核员：市中区人力资源和社会保障局")
    open_from_queue(page, LI_MING_CLAIM)
    page.get_by_role("button", name="通过", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("已通过")

    def registered() -> bool:
        page.reload()
        return "已登记省平台" in (page.locator("#claim-status").text_content() or "")

    eventually(registered, timeout_s=60, what="registered at the province, on the page")
    screenshot(page, "review-task-registered")

    claim_id = unit_task["claim_id"]
    with console_stack.api() as http:
        claim = http.get(f"{console_stack.url('claims')}/v1/claims/{claim_id}").json()
    assert (claim["status"], claim["sync_status"]) == ("approved", "registered")
    id_number = PEOPLE[0][0]
    hours = httpx.get(
        f"{console_stack.url('province')}/province/v1/persons/{id_number}/hours",
        params={"year": 2026},
        timeout=10,
    )
    assert hours.status_code == 200 and "16" in hours.text


def test_refusals_change_nothing_and_keep_what_was_typed(
    page: Page, console_stack: ConsoleStack
) -> None:
    one_click(page, "用人单位管理员：枣庄市立医院")
    open_from_queue(page, WANG_FANG_CLAIM)
    task_url = page.url

    # 驳回 without a reason: refused on the page, the task still open
    page.get_by_role("button", name="驳回", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("驳回时必须填写驳回理由")
    assert task_of(console_stack, WANG_FANG_CLAIM, stage="unit")["status"] == "open"
    screenshot(page, "review-refusal")

    # someone else approves it meanwhile (a second tab of the same reviewer)
    other = page.context.new_page()
    other.goto(task_url)
    other.get_by_role("button", name="通过", exact=True).click()
    expect(other.get_by_role("status").first).to_contain_text("已通过")
    other.close()

    reason = "证书照片不清晰，请重新上传"
    page.get_by_label("驳回理由").fill(reason)
    page.get_by_role("button", name="驳回", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("该申报已处理")
    expect(page.get_by_label("驳回理由")).to_have_value(reason)
    task = task_of(console_stack, WANG_FANG_CLAIM, stage="unit")
    assert (task["status"], task["decision"], task["reason"]) == ("decided", "approve", None)
