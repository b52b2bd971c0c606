"""Review (分级审验) for unit and agency admins (unit stage) and district and department admins
(authority stage): the 待审核 queue. (The task page, bulk decisions, 审核进度 and the decisions
export follow.)"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from console.web import REVIEWER_ROLES, CurrentUser, render, require_role

router = APIRouter(prefix="/review")

PAGE_SIZE = 50
STAGE_OF_ROLE = {
    "unit_admin": "unit",
    "agency_admin": "unit",
    "district_admin": "authority",
    "department_admin": "authority",
}


@router.get("", response_class=HTMLResponse)
async def queue(request: Request, user: CurrentUser) -> HTMLResponse:
    require_role(user, *REVIEWER_ROLES)
    params: dict[str, Any] = {
        "status": "open",
        "stage": STAGE_OF_ROLE[user.principal.role],
        "limit": PAGE_SIZE,
        "cursor": request.query_params.get("cursor"),
    }
    page = await user.api.get("review", "/v1/review-tasks", params)
    return render(request, "review/queue.html", {"tasks": page["items"], "page": page})
