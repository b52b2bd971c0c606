"""The staff pages in process against a real claims app (and a real review app for the task
page): 我的学时 shows the year's figures the API gives, 我的申报 each claim's status, stage and
province sync status in words, 消息 the feed and marks it read only with the CSRF token."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.app import create_app
from console.pages.staff import SOURCE_NAMES
from console.settings import ConsoleSettings
from console.tests.city_support import Browser, alerts
from console.tests.conftest import Console
from libs.common.events import SyncRecordFailed, topic_of
from services.claims.tests.harness import Person, Stack, claims_stack, one_day_training


@dataclass
class Staff:
    claims: Stack
    browser: Browser
    person: Person

    async def api(self, path: str, **params: Any) -> Any:
        r = await self.claims.http.get(path, params=params or None, headers=self.person.auth)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
async def staff(tmp_path: Path) -> AsyncIterator[Staff]:
    async with claims_stack(tmp_path) as claims:
        unit = await claims.add_org("unit")
        person = await claims.register(unit, name="李华")
        app = create_app(
            ConsoleSettings(env="test", data_dir=tmp_path),
            {"claims": httpx.ASGITransport(app=claims.app)},
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
            browser = Browser(http)
            await browser.sign_in("personnel", person_id=person.id)
            yield Staff(claims, browser, person)


def text_of(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))


async def submit_two(staff: Staff) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two one-day trainings: the first approved (credited), the second still in review."""
    first = await staff.claims.submit(
        staff.person, one_day_training([await staff.claims.upload(staff.person)])
    )
    second = await staff.claims.submit(
        staff.person,
        {
            **one_day_training([await staff.claims.upload(staff.person)]),
            "title": "护理质量管理培训班",
            "start_date": "2026-11-09",
            "end_date": "2026-11-09",
        },
    )
    approved = await staff.claims.approve(first)
    return approved, second


async def test_my_hours_shows_the_year_the_api_gives(staff: Staff) -> None:
    await submit_two(staff)
    page = await staff.browser.get("/me")
    assert page.status_code == 200, page.text
    me = await staff.api("/v1/me")
    plan = await staff.api(f"/v1/persons/{staff.person.id}/plan")
    summary = me["summary"]
    assert summary["required"] == {"public": 30, "professional": 60, "total": 90}
    assert summary["credited"]["professional"] == 8 and summary["pending"]["professional"] == 8
    for subject, label in (("public", "公需科目"), ("professional", "专业科目"), ("total", "总计")):
        required = float(summary["required"][subject])
        credited = float(summary["credited"][subject])
        bar = re.search(
            rf'id="subject-{subject}".*?<progress max="([\d.]+)" value="([\d.]+)"', page.text, re.S
        )
        assert bar, subject
        assert (float(bar.group(1)), float(bar.group(2))) == (required, min(credited, required))
        assert f"{label} {credited} / {required} 学时" in text_of(page)
    words = text_of(page)
    assert "已认定 8.0 学时 · 审核中 8.0 学时 · 还需 44.0 学时" in words  # 60 − 8 − 8
    assert plan["subjects"]["professional"]["still_needed"] == 44
    assert f"还剩 {plan['days_left']} 天" in words and plan["window_closes"] in words
    assert "本年度学时尚未达标" in words
    options = [o for s in plan["suggestions"] if s["still_needed"] for o in s["options"]]
    assert options
    for option in options:
        name = SOURCE_NAMES[option["source"]]
        assert f"{name}：最多可计 {float(option['hours'])} 学时" in words
    assert "built-in method" not in words and not re.search(r"[a-z]{4,} [a-z]{4,}", words)
    assert 'style="' not in page.text  # the CSP forbids inline style
    nav = re.findall(r'<li><a href="(/me[^"]*)"[^>]*>([^<]+)</a>', page.text)
    assert nav == [("/me", "我的学时"), ("/me/claims", "我的申报"), ("/me/messages", "消息")]


async def test_my_claims_show_status_stage_and_sync_in_words(staff: Staff) -> None:
    approved, in_review = await submit_two(staff)
    page = await staff.browser.get("/me/claims")
    assert page.status_code == 200, page.text
    listed = await staff.api("/v1/claims", person_id=staff.person.id)
    assert listed["total"] == 2 and "共 2 条申报" in page.text
    sync_words = {"pending": "待同步", "registered": "已同步", "not_applicable": "无需同步"}
    for claim, status, stage in ((approved, "已通过", "—"), (in_review, "审核中", "单位审核")):
        [row] = [c for c in listed["items"] if c["id"] == claim["id"]]
        card = re.search(rf'id="claim-{claim["id"]}".*?</li>', page.text, re.S)
        assert card, claim["id"]
        words = text_of(httpx.Response(200, text=card.group(0)))
        assert row["title"] in words and f"状态 {status}" in words
        assert f"审核阶段 {stage}" in words
        assert f"省平台同步 {sync_words[row['sync_status']]}" in words
    assert approved["sync_status"] == "pending"  # approved, on its way to the province


async def test_messages_mark_all_read_only_with_the_csrf_token(staff: Staff) -> None:
    await submit_two(staff)
    feed = await staff.api("/v1/me/notifications")
    assert feed["unread"] >= 3 and feed["items"]
    page = await staff.browser.get("/me/messages")
    assert f"{feed['unread']} 条未读" in page.text
    words = text_of(page)
    kinds = [line["kind"] for line in feed["items"]]
    assert kinds.count("claim_submitted") == 2 and "claim_approved" in kinds
    assert "「急诊医学新进展培训班」已提交（第 1 版），进入单位审核。" in words
    assert "「护理质量管理培训班」已提交（第 1 版），进入单位审核。" in words
    assert "「急诊医学新进展培训班」已审核通过，认定 专业科目 8 学时。" in words
    assert not re.search(r"[A-Za-z]{4,} [a-z]{3,}", words)  # no English line from the service

    forged = await staff.browser.http.post("/me/messages/read", data={"csrf_token": "forged"})
    assert forged.status_code == 403 and alerts(forged)
    assert (await staff.api("/v1/me/notifications"))["unread"] == feed["unread"]

    done = await staff.browser.follow(await staff.browser.post("/me/messages/read"))
    assert f"已将 {feed['unread']} 条消息标为已读。" in done.text
    assert "没有未读消息" in done.text and "全部标为已读" not in done.text
    assert (await staff.api("/v1/me/notifications"))["unread"] == 0


async def test_a_reviewer_is_not_shown_the_staff_pages(staff: Staff) -> None:
    await staff.browser.sign_in("city_admin")
    page = await staff.browser.get("/me")
    assert page.status_code == 403 and alerts(page)
    assert "我的学时" not in page.text.split("</nav>")[0]


async def test_the_review_task_shows_travel_days_transfer_date_and_authority(
    console: Console,
) -> None:
    claim_id = await console.review.submit(
        "U1",
        category="expert_activity",
        travel_days=2,
        transfer_date="2026-03-01",
        issuing_authority="济南市人力资源和社会保障局",
    )
    [task] = await console.review.tasks(claim_id, "open")
    await console.sign_in("unit_admin", "U1")
    page = await console.http.get(f"/review/tasks/{task['id']}")
    assert page.status_code == 200, page.text
    words = text_of(page)
    assert "往返和休息天数 2 天（不计学时）" in words
    assert "调入日期 2026-03-01" in words
    assert "原发证机关 济南市人力资源和社会保障局" in words
    plain = await console.review.submit("U1")
    [other] = await console.review.tasks(plain, "open")
    assert "往返和休息天数" not in (await console.http.get(f"/review/tasks/{other['id']}")).text


async def test_a_rejection_and_a_failed_sync_are_told_in_words(staff: Staff) -> None:
    approved, in_review = await submit_two(staff)
    await staff.claims.reject(in_review, "缺少结业证书")
    await staff.claims.publish(
        topic_of("sync"),
        SyncRecordFailed(record_id="r-1", claim_id=approved["id"], reason="province refused"),
        subject=approved["id"],
    )
    listed = {c["id"]: c for c in (await staff.api("/v1/claims"))["items"]}
    assert listed[approved["id"]]["sync_status"] == "failed"
    assert listed[in_review["id"]]["status"] == "rejected"
    claims = await staff.browser.get("/me/claims")
    rejected = re.search(rf'id="claim-{in_review["id"]}".*?</li>', claims.text, re.S)
    failed = re.search(rf'id="claim-{approved["id"]}".*?</li>', claims.text, re.S)
    assert rejected and failed
    assert "状态 已驳回 ：缺少结业证书" in text_of(httpx.Response(200, text=rejected.group(0)))
    assert "省平台同步 同步失败（系统将自动重试）" in text_of(
        httpx.Response(200, text=failed.group(0))
    )
    messages = text_of(await staff.browser.get("/me/messages"))
    assert "「护理质量管理培训班」在单位审核被驳回：缺少结业证书" in messages
