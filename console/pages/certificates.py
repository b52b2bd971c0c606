"""E-certificates: a project's certificates (its organiser, the city bureau), the city bureau's
look-up by code and every certificate, and revocation with a reason (a revoked certificate stops
counting; the registry tells the other services)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.problems import ApiProblem
from console.texts import SUBJECTS
from console.web import CurrentUser, User, redirect, render, require_role

router = APIRouter()

PAGE_SIZE = 50
STATUS = {"valid": "有效", "revoked": "已撤销"}
PROJECT_ROLES = ("city_admin", "provider", "unit_admin", "department_admin", "district_admin")


def _shown(extra: dict[str, object]) -> dict[str, object]:
    return {"status_labels": STATUS, "subjects": SUBJECTS, **extra}


@router.get("/filings/{project_id}/certificates", response_class=HTMLResponse)
async def project_certificates(
    request: Request, user: CurrentUser, project_id: str
) -> HTMLResponse:
    require_role(user, *PROJECT_ROLES)
    project = await user.api.get("registry", f"/v1/projects/{project_id}")
    page = await user.api.get(
        "registry",
        "/v1/certificates",
        {
            "project_id": project_id,
            "cursor": request.query_params.get("cursor"),
            "limit": PAGE_SIZE,
        },
    )
    return render(
        request,
        "certificates/list.html",
        _shown(
            {
                "project": project,
                "certificates": page["items"],
                "next_cursor": page["next_cursor"],
                "city": user.principal.role == "city_admin",
            }
        ),
    )


@router.get("/certificates", response_class=HTMLResponse)
async def all_certificates(request: Request, user: CurrentUser) -> Response:
    """The city bureau: look a certificate up by its code, or page through all of them."""
    require_role(user, "city_admin")
    code = request.query_params.get("code", "").strip()
    if code:
        return redirect(f"/certificates/{quote(code, safe='')}")
    page = await user.api.get(
        "registry",
        "/v1/certificates",
        {"cursor": request.query_params.get("cursor"), "limit": PAGE_SIZE},
    )
    return render(
        request,
        "certificates/list.html",
        _shown(
            {
                "project": None,
                "certificates": page["items"],
                "next_cursor": page["next_cursor"],
                "city": True,
            }
        ),
    )


async def _certificate_page(
    request: Request,
    user: User,
    code: str,
    *,
    alert: str | None = None,
    reason: str = "",
    status: int = 200,
) -> HTMLResponse:
    # the public look-up answers HTML to browsers: ask for the JSON document
    response = await user.api.request(
        "registry", "GET", f"/v1/certificates/{code}", headers={"Accept": "application/json"}
    )
    certificate = response.json()
    return render(
        request,
        "certificates/detail.html",
        _shown(
            {
                "certificate": certificate,
                "city": user.principal.role == "city_admin",
                "reason": reason,
                "alert": alert,
                "notice": "证书已撤销。"
                if request.query_params.get("done") == "revoked" and not alert
                else None,
            }
        ),
        status=status,
    )


@router.get("/certificates/{code}", response_class=HTMLResponse)
async def certificate(request: Request, user: CurrentUser, code: str) -> HTMLResponse:
    require_role(user, *PROJECT_ROLES)
    return await _certificate_page(request, user, code)


@router.post("/certificates/{code}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, user: CurrentUser, code: str) -> Response:
    require_role(user, "city_admin")
    form = await request.form()
    raw = form.get("reason")
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason:
        return await _certificate_page(
            request, user, code, alert="撤销证书必须填写撤销原因。", status=422
        )
    try:
        await user.api.post("registry", f"/v1/certificates/{code}/revoke", {"reason": reason})
    except ApiProblem as problem:
        return await _certificate_page(
            request, user, code, alert=problem.message, reason=reason, status=problem.status
        )
    return redirect(f"/certificates/{code}?done=revoked")
