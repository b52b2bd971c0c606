"""The staff pages (self-service) for a signed-in ``personnel`` principal, phone-first, from
the claims service's public API under the person's own token: 我的学时 (the year per subject
against the rule data's requirement, credited / pending, what still counts from the planner,
days left in the claim window), 我的申报 (each claim with status, stage and province sync
status in words) and 消息 (the notification feed, mark all read)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console.pages.review import CATEGORY_NAMES, CLAIM_STATUS, STAGE_NAMES, SUBJECT_NAMES
from console.problems import ApiProblem, optional
from console.web import CurrentUser, User, redirect, render, require_role

router = APIRouter(prefix="/me")

SUBJECTS = ("public", "professional", "total")
SUBJECT_LABELS = {"public": "公需科目", "professional": "专业科目", "total": "总计"}
# the province sync status as a person reads it (claims' ``sync_status``)
STAFF_SYNC_STATUS = {
    "not_applicable": "无需同步",
    "pending": "待同步",
    "registered": "已同步",
    "failed": "同步失败",
}
NOTIFICATION_KINDS = {
    "claim_submitted": "申报已提交",
    "stage_passed": "审核通过一级",
    "claim_approved": "申报已通过",
    "claim_rejected": "申报被驳回",
    "credit_revoked": "学时被撤销",
    "registered_at_province": "已登记省平台",
    "reminder_due": "学时提醒",
}
# where the planner's suggestions come from: a claim category, or the city platform's courses
SOURCE_NAMES = {**CATEGORY_NAMES, "city_platform": "市继续教育平台网络课程（无需申报）"}
FEED_PAGE = 50
CLAIMS_PAGE = 500


def _person_id(user: User) -> str:
    require_role(user, "personnel")
    if not user.principal.person_id:
        raise ApiProblem(422, "person_required", "this page needs a person")
    return user.principal.person_id


def subject_rows(summary: dict[str, Any], plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per subject and the total: required (the rule data's), credited, pending, the
    percentage for the bar (capped at 100) and what is still needed once pending is approved."""
    rows = []
    planned = (plan or {}).get("subjects") or {}
    for subject in SUBJECTS:
        required = float(summary["required"][subject])
        credited = float(summary["credited"][subject])
        if subject == "total":
            pending = float(summary["pending"]["public"]) + float(
                summary["pending"]["professional"]
            )
        else:
            pending = float(summary["pending"][subject])
        still = planned.get(subject, {}).get("still_needed")
        if still is None:
            still = max(required - credited - pending, 0.0)
        rows.append(
            {
                "subject": subject,
                "label": SUBJECT_LABELS[subject],
                "required": required,
                "credited": credited,
                "pending": pending,
                "bar": min(credited, required),
                "percent": round(100 * credited / required) if required else 100,
                "done": credited >= required,
                "still_needed": float(still),
            }
        )
    return rows


@router.get("", response_class=HTMLResponse)
async def my_hours(request: Request, user: CurrentUser) -> HTMLResponse:
    """我的学时: two calls (``GET /v1/me`` and the planner), whatever the year holds."""
    person_id = _person_id(user)
    me, plan = await asyncio.gather(
        user.api.get("claims", "/v1/me"),
        optional(user.api.get("claims", f"/v1/persons/{person_id}/plan")),
    )
    return render(
        request,
        "staff/hours.html",
        {
            "me": me,
            "plan": plan,
            "rows": subject_rows(me["summary"], plan),
            "subjects": SUBJECT_NAMES,
            "sources": SOURCE_NAMES,
        },
    )


def sync_in_words(claim: dict[str, Any]) -> str:
    words = STAFF_SYNC_STATUS.get(claim.get("sync_status") or "", claim.get("sync_status") or "—")
    if claim.get("sync_status") == "failed":
        reason = claim.get("sync_error") or claim.get("sync_reason")
        words += f"：{reason}" if reason else "（系统将自动重试）"
    return words


@router.get("/claims", response_class=HTMLResponse)
async def my_claims(request: Request, user: CurrentUser) -> HTMLResponse:
    """我的申报: the person's claims, newest first (one call)."""
    person_id = _person_id(user)
    page = await user.api.get(
        "claims", "/v1/claims", {"person_id": person_id, "sort": "newest", "limit": CLAIMS_PAGE}
    )
    claims = [{**c, "sync_words": sync_in_words(c)} for c in page["items"]]
    return render(
        request,
        "staff/claims.html",
        {
            "claims": claims,
            "total": page.get("total", len(claims)),
            "categories": CATEGORY_NAMES,
            "subjects": SUBJECT_NAMES,
            "claim_status": CLAIM_STATUS,
            "stages": STAGE_NAMES,
        },
    )


def _hours(value: object) -> str:
    return f"{float(str(value)):g}"


def _name(names: dict[str, str], code: object, default: str = "") -> str:
    return names.get(str(code), str(code)) if code else default


def _credits(credits: object) -> str:
    listed = credits if isinstance(credits, list) else []
    parts = [
        f"{_name(SUBJECT_NAMES, c.get('subject'))} {_hours(c.get('hours', 0))} 学时"
        for c in listed
        if isinstance(c, dict)
    ]
    return "；".join(parts) or "0 学时"


def message_in_chinese(line: dict[str, Any], titles: dict[str, str]) -> str:
    """A feed line in Chinese from its ``kind`` and ``data`` (the service's ``message`` is its
    English log line); a kind this console does not know keeps the service's text."""
    data = line.get("data") or {}
    title = titles.get(line.get("claim_id") or "", "")
    named = f"「{title}」" if title else "您的申报"
    stage = _name(STAGE_NAMES, data.get("stage"))
    reason = data.get("reason") or ""
    kind = line.get("kind")
    if kind == "claim_submitted":
        return f"{named}已提交（第 {data.get('revision', 1)} 版），进入单位审核。"
    if kind == "stage_passed":
        following = _name(STAGE_NAMES, data.get("next_stage"), "下一级审核")
        return f"{named}已通过{stage}，进入{following}。"
    if kind == "claim_approved":
        return f"{named}已审核通过，认定 {_credits(data.get('credits'))}。"
    if kind == "claim_rejected":
        return f"{named}在{stage}被驳回" + (f"：{reason}" if reason else "。")
    if kind == "credit_revoked":
        return f"{named}的学时已撤销" + (f"：{reason}" if reason else "。")
    if kind == "registered_at_province":
        return f"{named}的学时已登记省平台。"
    if kind == "reminder_due":
        gaps = data.get("gaps") or {}
        return (
            f"{data.get('year', '')} 年度学时尚未达标：公需科目还差 {_hours(gaps.get('public', 0))}"
            f" 学时，专业科目还差 {_hours(gaps.get('professional', 0))} 学时，请在申报截止前补足。"
        )
    return str(line.get("message", ""))


@router.get("/messages", response_class=HTMLResponse)
async def my_messages(request: Request, user: CurrentUser) -> HTMLResponse:
    """消息: the feed, newest first, unread ones marked, each line in Chinese (two calls: the
    feed and the person's claims, for their titles)."""
    person_id = _person_id(user)
    feed, claims = await asyncio.gather(
        user.api.get("claims", "/v1/me/notifications", {"limit": FEED_PAGE}),
        optional(
            user.api.get("claims", "/v1/claims", {"person_id": person_id, "limit": CLAIMS_PAGE})
        ),
    )
    titles = {c["id"]: c["title"] for c in (claims or {}).get("items", [])}
    lines = [{**n, "text": message_in_chinese(n, titles)} for n in feed["items"]]
    return render(
        request,
        "staff/messages.html",
        {"feed": feed, "lines": lines, "kinds": NOTIFICATION_KINDS},
    )


@router.post("/messages/read")
async def mark_all_read(user: CurrentUser) -> RedirectResponse:
    """全部标为已读 (the CSRF token is checked for every POST)."""
    _person_id(user)
    result = await user.api.post("claims", "/v1/me/notifications/read", json={})
    marked = int((result or {}).get("marked", 0))
    user.session.remember(
        "notice", f"已将 {marked} 条消息标为已读。" if marked else "没有未读消息。"
    )
    return redirect("/me/messages")
