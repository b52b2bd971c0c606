"""Review (分级审验) for unit and agency admins (unit stage) and district and department admins
(authority stage): the 待审核 queue with filters and pages, the task page with everything a
clerk needs to decide, 通过 / 驳回, bulk decisions with every item's result, evidence streamed
through the console under the reviewer's own token; for authority admins also 审核进度 and the
decisions export (CSV/XLSX).

Every page makes a fixed number of calls whatever its row count (no N+1): the queue is one call
(the task list carries person, unit, hours and dates)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from console.problems import ApiProblem, optional
from console.texts import warning_in_chinese
from console.web import (
    AUTHORITY_ROLES,
    REVIEWER_ROLES,
    CurrentUser,
    User,
    redirect,
    render,
    require_role,
)

router = APIRouter(prefix="/review")

PAGE_SIZE = 50
STAGE_OF_ROLE = {
    "unit_admin": "unit",
    "agency_admin": "unit",
    "district_admin": "authority",
    "department_admin": "authority",
}
STAGE_NAMES = {"unit": "单位审核", "authority": "主管部门审验"}
CATEGORY_NAMES = {
    "training": "培训进修",
    "study": "学习",
    "qualification_exam": "职业资格考试",
    "achievement": "代表性成果",
    "expert_activity": "专家服务活动",
    "aid_deployment": "援派、支教、支农、支医、扶贫",
    "competition": "技能竞赛",
    "exam_staff": "考务工作",
    "special_leave": "特殊情形（境外公派、病假、产假等）",
    "transfer_in": "外地调入",
}
SUBJECT_NAMES = {"public": "公需科目", "professional": "专业科目", "total": "合计"}
LEAVE_KINDS = {"abroad": "境外公派", "sick": "病假", "maternity": "产假", "other": "其他"}
DECISION_NAMES = {
    "approve": "通过",
    "reject": "驳回",
    "submitted": "提交",
    "routed": "分派",
    "moved": "转移",
    "assigned": "指派",
    "withdrawn": "撤回",
    "superseded": "被修订取代",
}
PROJECT_STATUS = {
    "submitted": "待备案审核",
    "approved": "已备案",
    "returned": "已退回修改",
    "rejected": "备案被驳回",
    "unknown": "备案状态未知",
}
CLAIM_STATUS = {
    "in_review": "审核中",
    "approved": "已通过",
    "rejected": "已驳回",
    "withdrawn": "已撤回",
    "revoked": "已撤销",
}
SYNC_STATUS = {
    "not_applicable": "无需登记",
    "pending": "待登记省平台",
    "registered": "已登记省平台",
    "failed": "省平台登记失败（将重试）",
}
AGE_CHOICES = {"": "不限", "3": "3 个工作日以上", "5": "5 个工作日以上", "10": "10 个工作日以上"}
VIEWABLE_TYPES = {"application/pdf", "image/jpeg", "image/png"}


def labels() -> dict[str, Any]:
    """The Chinese names every review template uses."""
    return {
        "categories": CATEGORY_NAMES,
        "subjects": SUBJECT_NAMES,
        "leave_kinds": LEAVE_KINDS,
        "decisions": DECISION_NAMES,
        "stages": STAGE_NAMES,
        "project_status": PROJECT_STATUS,
        "claim_status": CLAIM_STATUS,
        "sync_status": SYNC_STATUS,
    }


# --- the queue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    category: str = ""
    person: str = ""
    verified: str = ""  # "", "true", "false"
    min_age: str = ""

    def params(self) -> dict[str, Any]:
        return {
            "category": self.category if self.category in CATEGORY_NAMES else None,
            "person": self.person.strip() or None,
            "verified_evidence": self.verified if self.verified in ("true", "false") else None,
            "min_age": self.min_age if self.min_age.isdigit() else None,
        }

    def query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


async def queue_context(
    user: User, filters: QueueFilters, cursor: str | None, page_no: int
) -> dict[str, Any]:
    """One call: the open tasks of the reviewer's stage, oldest first, with their total."""
    params = {
        "status": "open",
        "stage": STAGE_OF_ROLE[user.principal.role],
        "sort": "created_at",
        "limit": PAGE_SIZE,
        "cursor": cursor,
        **filters.params(),
    }
    page = await user.api.get("review", "/v1/review-tasks", params)
    total = page.get("total")
    return {
        "tasks": page["items"],
        "total": total,
        "pages": math.ceil(total / PAGE_SIZE) if isinstance(total, int) else None,
        "page_no": page_no,
        "next_cursor": page.get("next_cursor"),
        "filters": filters,
        "filter_query": filters.query(),
        "age_choices": AGE_CHOICES,
        "stage": STAGE_OF_ROLE[user.principal.role],
        **labels(),
    }


@router.get("", response_class=HTMLResponse)
async def queue(
    request: Request,
    user: CurrentUser,
    category: str = "",
    person: str = "",
    verified: str = "",
    min_age: str = "",
    cursor: str | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """待审核: filters (category, person name or masked ID, verified evidence, age)."""
    require_role(user, *REVIEWER_ROLES)
    filters = QueueFilters(category, person, verified, min_age)
    try:
        context = await queue_context(user, filters, cursor, page)
    except ApiProblem as exc:
        if exc.status == 401:
            raise
        context = await queue_context(user, QueueFilters(), None, 1)
        context.update({"alert": exc.message, "filters": filters})
        return render(request, "review/queue.html", context, status=exc.status)
    return render(request, "review/queue.html", context)


@router.post("/bulk", response_class=HTMLResponse)
async def bulk(
    request: Request,
    user: CurrentUser,
    decision: Annotated[str, Form()],
    task_id: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """批量通过 / 批量驳回 (one reason for all): every item's result is shown, failures too."""
    require_role(user, *REVIEWER_ROLES)
    chosen = list(dict.fromkeys(task_id or []))
    form = await request.form()
    titles = {t: str(form.get(f"title_{t}") or t) for t in chosen}
    refusal = None
    if decision not in ("approve", "reject"):
        refusal = "审核结论无效。"
    elif not chosen:
        refusal = "请先勾选要审核的申报。"
    elif decision == "reject" and not reason.strip():
        refusal = "批量驳回必须填写驳回理由。"
    if refusal:
        context = await queue_context(user, QueueFilters(), None, 1)
        context.update({"alert": refusal, "checked": set(chosen), "bulk_reason": reason})
        return render(request, "review/queue.html", context, status=422)
    body: dict[str, Any] = {"decision": decision, "task_ids": chosen}
    if reason.strip():
        body["reason"] = reason.strip()
    try:
        outcome = await user.api.post("review", "/v1/review-tasks/decisions", json=body)
    except ApiProblem as exc:
        if exc.status == 401:
            raise
        context = await queue_context(user, QueueFilters(), None, 1)
        context.update({"alert": exc.message, "checked": set(chosen), "bulk_reason": reason})
        return render(request, "review/queue.html", context, status=exc.status)
    results = [
        {
            "title": titles.get(r["task_id"], r["task_id"]),
            "task_id": r["task_id"],
            "ok": r["status"] == 200,
            "message": (
                "已" + DECISION_NAMES[decision]
                if r["status"] == 200
                else ApiProblem(r["status"], r.get("code", ""), r.get("detail", "")).message
            ),
        }
        for r in outcome["results"]
    ]
    return render(
        request,
        "review/bulk_result.html",
        {
            "results": results,
            "decided": outcome["decided"],
            "failed": outcome["failed"],
            "decision_name": DECISION_NAMES[decision],
            "alert": f"{outcome['failed']} 条未能处理，原因见下表。" if outcome["failed"] else None,
        },
    )


# --- one task -------------------------------------------------------------------------------


def verified_by(task: dict[str, Any]) -> list[str]:
    """What made the evidence verified: an e-certificate, an exam card, a filed project."""
    found = []
    references = task.get("references") or {}
    if references.get("certificate_code"):
        found.append(f"电子证书 {references['certificate_code']}")
    if references.get("exam_card_no"):
        found.append(f"学时登记卡 {references['exam_card_no']}")
    project = task.get("project")
    if project and project.get("status") == "approved":
        found.append(f"已备案项目「{project.get('name') or project['id']}」")
    return found


async def task_context(user: User, task_id: str) -> dict[str, Any]:
    """The task and, beside it, the claim (its status, and whether it reached the province),
    its history, the person's year so far and the evidence files' names: 4 + (evidence files)
    calls."""
    task = await user.api.get("review", f"/v1/review-tasks/{task_id}")
    person_id = task["person"]["id"]
    claim, history, transcript, *files = await asyncio.gather(
        optional(user.api.get("claims", f"/v1/claims/{task['claim_id']}")),
        optional(user.api.get("review", f"/v1/claims/{task['claim_id']}/history")),
        optional(user.api.get("claims", f"/v1/persons/{person_id}/transcripts/{task['year']}")),
        *(optional(user.api.get("claims", f"/v1/evidence/{e}")) for e in task["evidence_ids"]),
    )
    evidence = [
        {
            "id": evidence_id,
            "name": (meta or {}).get("filename") or f"材料 {i}",
            "size": (meta or {}).get("size"),
            "content_type": (meta or {}).get("content_type"),
        }
        for i, (evidence_id, meta) in enumerate(zip(task["evidence_ids"], files, strict=True), 1)
    ]
    return {
        "task": task,
        "claim": claim,
        "history": history,
        "transcript": transcript,
        "evidence": evidence,
        "verified_by": verified_by(task),
        "warnings": [warning_in_chinese(w) for w in task.get("warnings") or []],
        "reason": "",
        **labels(),
    }


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str, user: CurrentUser) -> HTMLResponse:
    require_role(user, *REVIEWER_ROLES)
    return render(request, "review/task.html", await task_context(user, task_id))


@router.post("/tasks/{task_id}/decision", response_class=HTMLResponse)
async def decide(
    request: Request,
    task_id: str,
    user: CurrentUser,
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """通过 / 驳回. A refusal is shown on the task page, nothing changed, the reason kept."""
    require_role(user, *REVIEWER_ROLES)
    refusal: ApiProblem | None = None
    if decision == "reject" and not reason.strip():
        refusal = ApiProblem(422, "reason_required", "")
    elif decision not in ("approve", "reject"):
        refusal = ApiProblem(422, "invalid_decision", "")
    else:
        body: dict[str, Any] = {"decision": decision}
        if reason.strip():
            body["reason"] = reason.strip()
        try:
            task = await user.api.post("review", f"/v1/review-tasks/{task_id}/decision", json=body)
        except ApiProblem as exc:
            if exc.status in (401, 404):
                raise
            refusal = exc
    if refusal is not None:
        context = await task_context(user, task_id)
        context.update({"alert": refusal.message, "reason": reason})
        return render(request, "review/task.html", context, status=refusal.status)
    user.session.remember("notice", f"已{DECISION_NAMES[decision]}：「{task['title']}」")
    return redirect(f"/review/tasks/{task_id}")


@router.get("/evidence/{evidence_id}")
async def evidence_file(evidence_id: str, user: CurrentUser) -> Response:
    """查看材料: the file streamed from claims under the reviewer's own token, in a sandbox
    (no script runs in it, whatever the file holds)."""
    require_role(user, *REVIEWER_ROLES, "city_admin")
    upstream = await user.api.open_stream("claims", f"/v1/evidence/{evidence_id}/content")
    content_type = upstream.headers.get("content-type", "application/octet-stream")
    viewable = content_type.split(";")[0].strip() in VIEWABLE_TYPES
    headers = {
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; object-src 'self'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Disposition": "inline" if viewable else "attachment",
    }
    if "content-length" in upstream.headers:
        headers["Content-Length"] = upstream.headers["content-length"]
    return StreamingResponse(
        upstream.aiter_bytes(),
        media_type=content_type if viewable else "application/octet-stream",
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )


# --- authority admins: 审核进度 and the decisions export -------------------------------------


def _authority_org(user: User, org_id: str | None) -> str:
    if user.principal.role == "city_admin" and org_id:
        return org_id
    if user.principal.org_id is None:
        raise ApiProblem(422, "org_required", "this page needs an org")
    return user.principal.org_id


async def progress_context(user: User, authority: str) -> dict[str, Any]:
    queues = await user.api.get("review", "/v1/review-queues", {"org_id": authority})
    today = date.today()
    return {
        "queues": queues,
        "org_id": authority,
        "typed": {"from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()},
    }


@router.get("/progress", response_class=HTMLResponse)
async def progress(request: Request, user: CurrentUser, org_id: str | None = None) -> HTMLResponse:
    """审核进度: the queues of the units under the authority (open, oldest age, overdue)."""
    require_role(user, *AUTHORITY_ROLES)
    if user.principal.role == "city_admin" and not org_id:
        orgs = await user.api.get("review", "/v1/orgs", {"limit": 100, "type": "district"})
        departments = await user.api.get("review", "/v1/orgs", {"limit": 100, "type": "department"})
        return render(
            request,
            "review/progress_choose.html",
            {"authorities": orgs["items"] + departments["items"]},
        )
    context = await progress_context(user, _authority_org(user, org_id))
    return render(request, "review/progress.html", context)


@router.get("/decisions", response_class=Response)
async def decisions_export(
    request: Request,
    user: CurrentUser,
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
    format: str = "csv",
    org_id: str | None = None,
) -> Response:
    """The decisions export (CSV or XLSX), streamed from review; a refusal (a bad range) is
    shown on the 审核进度 page with the dates as typed."""
    require_role(user, *AUTHORITY_ROLES)
    authority = _authority_org(user, org_id)
    params = {
        "org_id": authority,
        "from": from_,
        "to": to,
        "format": "xlsx" if format == "xlsx" else "csv",
    }
    try:
        upstream = await user.api.open_stream("review", "/v1/review-decisions", params)
    except ApiProblem as exc:
        if exc.status == 401:
            raise
        context = await progress_context(user, authority)
        context.update({"alert": exc.message, "typed": {"from": from_, "to": to}})
        return render(request, "review/progress.html", context, status=exc.status)
    headers = {"Cache-Control": "private, no-store"}
    if "content-disposition" in upstream.headers:
        headers["Content-Disposition"] = upstream.headers["content-disposition"]
    return StreamingResponse(
        upstream.aiter_bytes(),
        media_type=upstream.headers.get("content-type", "application/octet-stream"),
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )
