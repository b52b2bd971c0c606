"""The console at a phone's width and by keyboard, the demo's people on the sign-in page, and
bulk approval in the browser with every item's result — checked through the API afterwards."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from ce.demo import demo_pdf
from tests.browser.conftest import PHONE, ConsoleStack, screenshot, sign_in
from tests.support import eventually


def submit_claim(stack: ConsoleStack, person_id: str, title: str, day: str) -> dict[str, Any]:
    token = stack.token("personnel", person_id=person_id)
    headers = {"Authorization": f"Bearer {token}"}
    claims = stack.url("claims")
    with httpx.Client(timeout=10, headers=headers) as http:
        evidence = http.post(
            f"{claims}/v1/evidence",
            files={"file": ("证书.pdf", demo_pdf(title), "application/pdf")},
        )
        assert evidence.status_code == 201, evidence.text
        body = {
            "person_id": person_id,
            "year": 2026,
            "category": "training",
            "title": title,
            "hours": 8,
            "start_date": day,
            "end_date": day,
            "reference_no": "鲁卫继备〔2026〕15号",
            "evidence_ids": [evidence.json()["id"]],
        }
        claim = http.post(f"{claims}/v1/claims", json=body)
        assert claim.status_code == 201, claim.text
        return dict(claim.json())


def person_of(stack: ConsoleStack, name: str) -> str:
    with stack.api() as http:
        r = http.get(stack.url("claims") + "/v1/persons", params={"q": name})
    [person] = [p for p in r.json()["items"] if p["name"] == name]
    return str(person["id"])


def test_the_sign_in_page_lists_the_demo_people_and_works_by_keyboard(page: Page) -> None:
    page.goto("/login")
    demos = page.get_by_role("region", name="演示账号一键登录")
    expect(demos.get_by_role("button", name="专业技术人员：李明")).to_be_visible()
    expect(
        demos.get_by_role("button", name="市人社局管理员：枣庄市人力资源和社会保障局")
    ).to_be_visible()
    # by keyboard alone: 角色 → 机构 → 人员 → 登录
    page.get_by_label("角色").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("机构")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("人员")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="登录", exact=True)).to_be_focused()


def test_the_queue_fits_a_phone(browser: Browser, console_stack: ConsoleStack) -> None:
    context = browser.new_context(base_url=console_stack.console, viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    try:
        sign_in(page, "unit_admin", org=console_stack.orgs["U-SZ-HOSP"])
        expect(page.get_by_role("heading", name="待审核")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than the phone"
        screenshot(page, "review-queue-phone")
    finally:
        context.close()


def test_bulk_approval_shows_each_result(page: Page, console_stack: ConsoleStack) -> None:
    person = person_of(console_stack, "赵强")
    titles = ["教学能力提升专题培训", "班主任工作专题培训"]
    claims = [
        submit_claim(console_stack, person, title, day)
        for title, day in zip(titles, ("2026-11-10", "2026-11-11"), strict=True)
    ]
    sign_in(page, "unit_admin", org=console_stack.orgs["U-TZ-SCHOOL"])

    def listed() -> bool:
        page.goto("/review")
        return all(page.get_by_role("link", name=t).count() == 1 for t in titles)

    eventually(listed, timeout_s=30, what="both claims in the queue")
    for title in titles:
        page.get_by_role("checkbox", name=title).check()
    page.get_by_role("button", name="批量通过").click()
    expect(page.get_by_role("heading", name="批量通过结果")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("成功 2 条，未能处理 0 条")
    screenshot(page, "review-bulk-result")

    with console_stack.api() as http:
        for claim in claims:
            tasks = http.get(
                console_stack.url("review") + "/v1/review-tasks",
                params={"claim_id": claim["id"], "stage": "unit"},
            ).json()["items"]
            assert [(t["status"], t["decision"]) for t in tasks] == [("decided", "approve")]


def test_the_district_sees_its_units_queues_and_exports_decisions(page: Page) -> None:
    page.goto("/login")
    page.get_by_role("button", name="区（市）人社局审核员：市中区人力资源和社会保障局").click()
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="审核进度").click()
    expect(page.get_by_role("heading", name="审核进度")).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("枣庄市立医院")
    screenshot(page, "review-progress")
    with page.expect_download() as download:
        page.get_by_role("button", name="导出").click()
    assert download.value.suggested_filename.endswith(".csv")


def test_a_filter_applies_as_it_changes_and_the_url_says_it(page: Page) -> None:
    """htmx enhances the filter form (the 筛选 button does the same without script), within
    the CSP: no violation is reported."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.goto("/login")
    page.get_by_role("button", name="用人单位管理员：枣庄市立医院").click()
    expect(page.get_by_role("heading", name="待审核")).to_be_visible()
    page.get_by_label("类别").select_option("study")
    expect(page).to_have_url(re.compile(r"category=study"))
    expect(page.locator("#queue-results")).to_contain_text("共 0 条待审核")
    page.reload()  # the URL alone gives the same page
    expect(page.get_by_label("类别")).to_have_value("study")
    assert not [m for m in messages if "Content Security Policy" in m], messages
