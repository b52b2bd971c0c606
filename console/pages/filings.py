"""项目备案 (training-project filings, 附件2): the city bureau's queue of submitted filings with
every field, the form PDF, 审核意见 and 通过 / 退回 / 驳回; for CE bases and filing units (units,
departments, districts) a new filing saved as a draft or submitted, its status and the bureau's
opinion, and the amendment of a returned filing. The registry decides everything; a refusal is
shown on the same page with what was typed kept."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.pages import filing_form
from console.pages.streams import stream_from
from console.problems import ApiProblem
from console.web import CurrentUser, User, redirect, render, require_role

router = APIRouter(prefix="/filings")

FILING_ROLES = ("provider", "unit_admin", "department_admin", "district_admin")
"""Who files for its own org (the registry checks that the org's type files under that role)."""
PAGE_SIZE = 20
STATUS_TABS = (
    ("submitted", "待审核"),
    ("approved", "已备案"),
    ("returned", "已退回"),
    ("rejected", "不予备案"),
    ("", "全部"),
)
DECISIONS = {"approve": "通过", "return": "退回", "reject": "驳回"}


async def org_names(user: User, org_ids: set[str]) -> dict[str, str]:
    """The names of the orgs on a page (at most a page's distinct applicants, concurrently)."""

    async def name_of(org_id: str) -> tuple[str, str]:
        try:
            org = await user.api.get("review", f"/v1/orgs/{org_id}")
        except ApiProblem:
            return org_id, org_id
        return org_id, str(org["name"])

    return dict(await asyncio.gather(*(name_of(i) for i in sorted(org_ids))))


@router.get("", response_class=HTMLResponse)
async def filings(request: Request, user: CurrentUser) -> HTMLResponse:
    """The city bureau: filings by status (submitted first); a filer: its own filings."""
    require_role(user, "city_admin", *FILING_ROLES)
    city = user.principal.role == "city_admin"
    status = request.query_params.get("status", "submitted" if city else "")
    page = await user.api.get(
        "registry",
        "/v1/projects",
        {
            "status": status or None,
            "cursor": request.query_params.get("cursor"),
            "limit": PAGE_SIZE,
        },
    )
    names = await org_names(user, {p["applicant_org_id"] for p in page["items"]})
    return render(
        request,
        "filings/list.html",
        {
            "city": city,
            "status": status,
            "tabs": STATUS_TABS,
            "projects": page["items"],
            "next_cursor": page["next_cursor"],
            "total": page.get("total"),
            "names": names,
            "labels": filing_form.STATUS_LABELS,
            "fields": {p["id"]: filing_form.display_rows(p) for p in page["items"]},
        },
    )


def _form_context(user: User, values: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "fields": filing_form.FIELDS,
        "values": values,
        "applicant": user.principal.label or user.principal.org_id,
        # one key per rendered form: a double click or a resent form files one draft
        "idempotency_key": values.get("idempotency_key") or secrets.token_urlsafe(16),
        **extra,
    }


def _typed(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


@router.get("/new", response_class=HTMLResponse)
async def new_filing(request: Request, user: CurrentUser) -> HTMLResponse:
    require_role(user, *FILING_ROLES)
    values = {"year": str(date.today().year), "form": "offline", "advanced_seminar": "false"}
    return render(request, "filings/new.html", _form_context(user, values))


@router.post("/new", response_class=HTMLResponse)
async def create_filing(request: Request, user: CurrentUser) -> Response:
    """保存草稿 (``action=save``) or 提交备案 (``action=submit``: saved, then submitted)."""
    require_role(user, *FILING_ROLES)
    typed = _typed(await request.form())
    parsed = filing_form.parse_form(typed, applicant_org_id=user.principal.org_id or "")
    if parsed.errors:
        context = _form_context(user, typed, alert="\n".join(parsed.errors))
        return render(request, "filings/new.html", context, status=422)
    try:
        project = await user.api.post(
            "registry",
            "/v1/projects",
            parsed.body,
            headers={"Idempotency-Key": typed.get("idempotency_key") or secrets.token_urlsafe(16)},
        )
    except ApiProblem as problem:
        context = _form_context(user, typed, alert=problem.message)
        return render(request, "filings/new.html", context, status=problem.status)
    if typed.get("action") != "submit":
        return redirect(f"/filings/{project['id']}?done=saved")
    return await _submit_or_show(request, user, project["id"])


async def _submit_or_show(request: Request, user: CurrentUser, project_id: str) -> Response:
    try:
        await user.api.post("registry", f"/v1/projects/{project_id}/submit")
    except ApiProblem as problem:
        # the filing is kept as a draft (or as returned): show why it was not submitted
        return await _detail(
            request,
            user,
            project_id,
            alert=f"已保存，但未能提交备案：{problem.message}",
            status=problem.status,
        )
    return redirect(f"/filings/{project_id}?done=submitted")


NOTICES = {
    "saved": "已保存为草稿。",
    "submitted": "已提交备案，等待市人社局审核。",
    "approve": "已通过备案。",
    "return": "已退回申报单位修改。",
    "reject": "已驳回（不予备案）。",
}


async def _detail(
    request: Request,
    user: User,
    project_id: str,
    *,
    alert: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    project, history = await asyncio.gather(
        user.api.get("registry", f"/v1/projects/{project_id}"),
        user.api.get("registry", f"/v1/projects/{project_id}/history"),
    )
    names = await org_names(user, {project["applicant_org_id"]})
    city = user.principal.role == "city_admin"
    own = user.principal.org_id == project["applicant_org_id"]
    return render(
        request,
        "filings/detail.html",
        {
            **_form_context(user, typed or filing_form.form_values(project)),
            "project": project,
            "applicant": names[project["applicant_org_id"]],
            "rows": filing_form.display_rows(project),
            "steps": history["steps"],
            "step_labels": filing_form.STEP_LABELS,
            "labels": filing_form.STATUS_LABELS,
            "city": city,
            "may_decide": city and project["status"] == "submitted",
            "may_amend": own and project["status"] in filing_form.EDITABLE,
            "decisions": DECISIONS,
            "opinion": (typed or {}).get("opinion", ""),
            "alert": alert,
            "notice": NOTICES.get(request.query_params.get("done", "")) if not alert else None,
        },
        status=status,
    )


@router.get("/{project_id}", response_class=HTMLResponse)
async def filing(request: Request, user: CurrentUser, project_id: str) -> HTMLResponse:
    return await _detail(request, user, project_id)


@router.post("/{project_id}", response_class=HTMLResponse)
async def amend_filing(request: Request, user: CurrentUser, project_id: str) -> Response:
    """Amend a draft or a returned filing (保存), optionally submitting it (提交备案)."""
    require_role(user, *FILING_ROLES)
    typed = _typed(await request.form())
    parsed = filing_form.parse_form(typed, applicant_org_id=user.principal.org_id or "")
    if parsed.errors:
        return await _detail(
            request, user, project_id, alert="\n".join(parsed.errors), typed=typed, status=422
        )
    try:
        await user.api.request("registry", "PUT", f"/v1/projects/{project_id}", json=parsed.body)
    except ApiProblem as problem:
        return await _detail(
            request, user, project_id, alert=problem.message, typed=typed, status=problem.status
        )
    if typed.get("action") != "submit":
        return redirect(f"/filings/{project_id}?done=saved")
    return await _submit_or_show(request, user, project_id)


@router.post("/{project_id}/decision", response_class=HTMLResponse)
async def decide_filing(request: Request, user: CurrentUser, project_id: str) -> Response:
    """The city bureau's 通过 / 退回 / 驳回 with its 审核意见 (required to return or reject)."""
    require_role(user, "city_admin")
    typed = _typed(await request.form())
    decision = typed.get("decision", "")
    if decision not in DECISIONS:
        return await _detail(
            request, user, project_id, alert="请选择通过、退回或驳回。", typed=typed, status=422
        )
    opinion = typed.get("opinion", "").strip()
    if decision != "approve" and not opinion:
        return await _detail(
            request,
            user,
            project_id,
            alert=f"{DECISIONS[decision]}时必须填写审核意见。",
            typed=typed,
            status=422,
        )
    try:
        await user.api.post(
            "registry",
            f"/v1/projects/{project_id}/decision",
            {"decision": decision, "opinion": opinion or None},
        )
    except ApiProblem as problem:
        return await _detail(
            request, user, project_id, alert=problem.message, typed=typed, status=problem.status
        )
    return redirect(f"/filings/{project_id}?done={decision}")


@router.get("/{project_id}/form.pdf")
async def filing_pdf(user: CurrentUser, project_id: str) -> Response:
    """The 附件2 form as the registry prints it, streamed under the user's own token."""
    return await stream_from(user, "registry", f"/v1/projects/{project_id}/form.pdf")
