"""运行状态 (ops and the city bureau): the province sync summary and every service's dead
letters, each replayable (handled again through the service's inbox: an event that had its
effect has none again). A service that does not answer is shown as such; the rest still shows."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.clients import SERVICES
from console.problems import ApiProblem
from console.web import CurrentUser, User, redirect, render, require_role

router = APIRouter(prefix="/ops")

ROLES = ("ops", "city_admin")
SERVICE_NAMES = {
    "claims": "学时申报（claims）",
    "review": "审核与机构（review）",
    "registry": "备案与证书（registry）",
    "sync": "同步服务（sync）",
}
RECORD_STATUS = {
    "pending": "待发送",
    "sending": "发送中",
    "registered": "已登记",
    "failed": "失败",
    "waiting_person": "等待人员信息",
    "void_pending": "待作废",
    "voided": "已作废",
}
BREAKER = {"closed": "正常（闭合）", "open": "熔断中（断开）", "half_open": "试探恢复（半开）"}
OUTCOMES = {"applied": "已重新处理。", "skipped": "该事件此前已处理过，本次未重复生效。"}


async def _or_problem(call: Any) -> tuple[Any, str | None]:
    try:
        return await call, None
    except ApiProblem as problem:
        return None, problem.message


async def _page(
    request: Request, user: User, *, alert: str | None = None, notice: str | None = None
) -> HTMLResponse:
    summary, *letters = await asyncio.gather(
        _or_problem(user.api.get("sync", "/v1/sync/summary")),
        *(_or_problem(user.api.get(s, "/v1/admin/dead-letters")) for s in SERVICES),
    )
    return render(
        request,
        "ops/status.html",
        {
            "summary": summary[0],
            "summary_error": summary[1],
            "services": [
                {"name": s, "label": SERVICE_NAMES[s], "letters": body, "error": error}
                for s, (body, error) in zip(SERVICES, letters, strict=True)
            ],
            "record_status": RECORD_STATUS,
            "breaker": BREAKER,
            "alert": alert,
            "notice": notice,
        },
        status=200,
    )


@router.get("", response_class=HTMLResponse)
async def status(request: Request, user: CurrentUser) -> HTMLResponse:
    require_role(user, *ROLES)
    outcome = request.query_params.get("replayed", "")
    return await _page(request, user, notice=OUTCOMES.get(outcome))


@router.post("/dead-letters/{service}/{letter_id}/replay", response_class=HTMLResponse)
async def replay(request: Request, user: CurrentUser, service: str, letter_id: str) -> Response:
    require_role(user, *ROLES)
    if service not in SERVICES:
        return await _page(request, user, alert="未知的服务。")
    try:
        result = await user.api.post(service, f"/v1/admin/dead-letters/{letter_id}/replay")
    except ApiProblem as problem:
        return await _page(request, user, alert=f"重放失败：{problem.message}")
    return redirect(f"/ops?replayed={result.get('outcome', '')}")
