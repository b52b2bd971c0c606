"""结业名单: the organiser of an approved project uploads who completed it (CSV or XLSX with the
columns 身份证号, 姓名, 学时, 是否合格 — or id_number, name, hours, passed) and sees every row's
result: certificate issued, recorded (not passed), unchanged (uploaded before) or refused with
the reason. The registry takes each row on its own."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from console.pages.streams import Refused, post_file
from console.problems import ApiProblem
from console.web import CurrentUser, User, render, require_role

router = APIRouter(prefix="/filings")

ROLES = ("provider", "unit_admin", "department_admin", "district_admin")
MAX_BYTES = 10 * 1024 * 1024
ROW_STATUS = {
    "issued": "已发证",
    "recorded": "已记录（未合格）",
    "unchanged": "已上传过，未变化",
    "rejected": "有误未处理",
}
ROW_MESSAGES = {
    "invalid_id_number": "身份证号码无效。",
    "name_required": "缺少姓名。",
    "invalid_hours": "学时不是有效数字。",
    "hours_above_planned": "学时超过项目拟计算学时。",
    "duplicate_person": "该人员在前面的行中已出现。",
    "invalid_passed": "“是否合格”应填写 是/否。",
    "completion_exists": "该人员已在本项目名单中，且结果不同。",
}


async def _page(
    request: Request,
    user: User,
    project_id: str,
    *,
    result: dict[str, object] | None = None,
    alert: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    project = await user.api.get("registry", f"/v1/projects/{project_id}")
    return render(
        request,
        "roster/upload.html",
        {
            "project": project,
            "result": result,
            "row_status": ROW_STATUS,
            "row_messages": ROW_MESSAGES,
            "alert": alert,
        },
        status=status,
    )


@router.get("/{project_id}/roster", response_class=HTMLResponse)
async def roster_form(request: Request, user: CurrentUser, project_id: str) -> HTMLResponse:
    require_role(user, *ROLES)
    return await _page(request, user, project_id)


@router.post("/{project_id}/roster", response_class=HTMLResponse)
async def upload_roster(request: Request, user: CurrentUser, project_id: str) -> HTMLResponse:
    require_role(user, *ROLES)
    try:
        sent = await post_file(
            user,
            "registry",
            f"/v1/projects/{project_id}/completions",
            await request.form(),
            max_bytes=MAX_BYTES,
        )
    except ApiProblem as problem:
        return await _page(request, user, project_id, alert=problem.message, status=problem.status)
    if isinstance(sent, Refused):
        return await _page(request, user, project_id, alert=sent.message, status=sent.status)
    result = sent.json()
    return await _page(request, user, project_id, result=result)
