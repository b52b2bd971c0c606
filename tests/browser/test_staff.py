"""The staff pages in Chromium at a phone's width: the demo person 李明 signs in with the dev
one-click, sees 我的学时 with the figures the API gives (bars, credited / pending, days left),
then 我的申报 (every claim, its status and province sync status in words) and 消息 (the feed,
marked read) — each checked against the API."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Browser, expect

from tests.browser.conftest import PHONE, ConsoleStack, screenshot
from tests.browser.test_layout_and_bulk import person_of

CLAIM_STATUS = {"in_review": "审核中", "approved": "已通过", "rejected": "已驳回"}
SYNC_WORDS = {"pending": "待同步", "registered": "已同步", "not_applicable": "无需同步"}


def api_get(stack: ConsoleStack, who: str, path: str, **params: Any) -> Any:
    """A claims GET under the person's own token (``who``: their person id)."""
    with stack.api("personnel", person_id=who) as http:
        r = http.get(stack.url("claims") + path, params=params or None)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_demo_person_sees_their_year_claims_and_messages(
    browser: Browser, console_stack: ConsoleStack
) -> None:
    person_id = person_of(console_stack, "李明")
    context = browser.new_context(base_url=console_stack.console, viewport=PHONE, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_role("button", name="专业技术人员：李明").click()
        expect(page.get_by_role("heading", name="我的学时", exact=True)).to_be_visible()
        assert page.url.endswith("/me")
        me = api_get(console_stack, person_id, "/v1/me")
        plan = api_get(console_stack, person_id, f"/v1/persons/{person_id}/plan")
        summary = me["summary"]
        for subject in ("public", "professional", "total"):
            required = float(summary["required"][subject])
            credited = float(summary["credited"][subject])
            meter = page.locator(f"#subject-{subject}")
            expect(meter).to_contain_text(f"{credited} / {required} 学时")
            bar = meter.locator("progress")
            assert float(bar.get_attribute("max") or "nan") == required
            assert float(bar.get_attribute("value") or "nan") == min(credited, required)
        assert float(summary["required"]["total"]) == 90  # the notice's 30 + 60
        expect(page.locator("#days-left")).to_contain_text(f"还剩 {plan['days_left']} 天")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width}px wide on a phone"
        screenshot(page, "staff-hours")

        nav = page.get_by_role("navigation", name="主导航")
        nav.get_by_role("link", name="我的申报").click()
        expect(page.get_by_role("heading", name="我的申报")).to_be_visible()
        claims = api_get(console_stack, person_id, "/v1/claims", person_id=person_id)["items"]
        assert claims, "the demo gives 李明 a claim"
        for claim in claims:
            card = page.locator(f"#claim-{claim['id']}")
            expect(card).to_contain_text(claim["title"])
            expect(card.locator(".claim-status")).to_contain_text(
                CLAIM_STATUS.get(claim["status"], claim["status"])
            )
            if claim["sync_status"] in SYNC_WORDS:
                expect(card.locator(".claim-sync")).to_have_text(SYNC_WORDS[claim["sync_status"]])
        screenshot(page, "staff-claims")

        nav.get_by_role("link", name="消息").click()
        expect(page.get_by_role("heading", name="消息")).to_be_visible()
        feed = api_get(console_stack, person_id, "/v1/me/notifications")
        expect(page.locator("ul.messages > li")).to_have_count(len(feed["items"]))
        submitted = [line for line in feed["items"] if line["kind"] == "claim_submitted"]
        if submitted:
            expect(page.get_by_text("已提交（第").first).to_be_visible()
        if feed["unread"]:
            expect(page.locator("#unread")).to_have_text(f"{feed['unread']} 条未读")
            page.get_by_role("button", name="全部标为已读").click()
            expect(page.get_by_role("status")).to_contain_text(
                re.compile(r"已将 \d+ 条消息标为已读")
            )
        expect(page.locator("#unread")).to_have_text("没有未读消息")
        assert api_get(console_stack, person_id, "/v1/me/notifications")["unread"] == 0
        screenshot(page, "staff-messages")
    finally:
        context.close()
