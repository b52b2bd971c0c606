"""HTTP routes of the registry (API.md: projects, certificates, exam cards). Thin: parse, call
the use case, shape the response."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, func, select

from libs.common import idempotency
from libs.common.auth import CurrentPrincipal, Principal
from libs.common.errors import Forbidden, NotFound, RuleViolation
from libs.common.idnumber import mask_id_number
from libs.common.limits import BodyTooLarge
from libs.common.pagination import page, paginate
from libs.common.problems import PROBLEM_RESPONSES
from libs.common.service import state_of
from libs.common.uow import UnitOfWork
from services.registry import pdf, service
from services.registry.models import Certificate, ExamCard, OrgReplica, Project, ProjectStep
from services.registry.roster import read_roster
from services.registry.rules import normalise_code
from services.registry.schemas import (
    CertificateOut,
    CertificatePage,
    ExamCardOut,
    HistoryOut,
    ProjectOut,
    ProjectPage,
    RosterOut,
    StepOut,
    card_view,
    certificate_view,
    project_view,
)
from services.registry.state import registry_of

router = APIRouter(prefix="/v1")

MAX_JSON_BYTES = 1024 * 1024
MAX_FILE_BYTES = 10 * 1024 * 1024


# --- projects ---------------------------------------------------------------------------------


@router.post("/projects", status_code=201, response_model=ProjectOut)
async def create_project(
    body: service.ProjectFields,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    """File a training project (附件2) as a draft; only for the caller's own org."""

    async def create(uow: UnitOfWork) -> dict[str, Any]:
        project = await service.create_project(uow, principal, body)
        return project_view(project).model_dump(mode="json")

    return await idempotency.create_once(
        state_of(request).uow, principal.sub, idempotency_key, body.model_dump(mode="json"), create
    )


@router.get("/projects/{project_id}")
async def get_project(project_id: str, request: Request, principal: CurrentPrincipal) -> ProjectOut:
    async with state_of(request).uow() as uow:
        return project_view(await service.visible_project(uow, principal, project_id))


@router.get("/projects")
async def list_projects(
    request: Request,
    principal: CurrentPrincipal,
    status: Literal["draft", "submitted", "approved", "rejected", "returned"] | None = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    applicant_org_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProjectPage:
    """The city bureau sees every filing (its queue: ``status=submitted``); others their own.
    ``total``: every filing the filters match."""
    where: list[ColumnElement[bool]] = []
    if not principal.is_city:
        where.append(Project.applicant_org_id == (principal.org_id or ""))
    if status:
        where.append(Project.status == status)
    if year:
        where.append(Project.year == year)
    if applicant_org_id:
        where.append(Project.applicant_org_id == applicant_org_id)
    stmt = paginate(select(Project).where(*where), Project.created_at, Project.id, cursor, limit)
    async with state_of(request).uow() as uow:
        rows = list((await uow.session.scalars(stmt)).all())
        total = await uow.session.scalar(select(func.count(Project.id)).where(*where))
    items, next_cursor = page(rows, limit)
    return ProjectPage(
        items=[project_view(p) for p in items], next_cursor=next_cursor, total=int(total or 0)
    )


@router.put("/projects/{project_id}")
async def amend_project(
    project_id: str, body: service.ProjectFields, request: Request, principal: CurrentPrincipal
) -> ProjectOut:
    """Amend a draft or a returned filing (all fields, as on creation)."""
    async with state_of(request).uow() as uow:
        view = project_view(await service.update_project(uow, principal, project_id, body))
        await uow.commit()
    return view


@router.post("/projects/{project_id}/submit")
async def submit_project(
    project_id: str, request: Request, principal: CurrentPrincipal
) -> ProjectOut:
    async with state_of(request).uow() as uow:
        project = await service.submit_project(uow, principal, project_id)
        view = project_view(project)
        await uow.commit()
    return view


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject", "return"]
    opinion: str | None = Field(default=None, max_length=2000)


@router.post("/projects/{project_id}/decision")
async def decide_project(
    project_id: str, body: DecisionIn, request: Request, principal: CurrentPrincipal
) -> ProjectOut:
    """The city bureau approves (备案), rejects or returns a submitted filing, with its opinion."""
    async with state_of(request).uow() as uow:
        project = await service.decide_project(
            uow, principal, project_id, body.decision, body.opinion
        )
        view = project_view(project)
        await uow.commit()
    return view


@router.get("/projects/{project_id}/history")
async def project_history(
    project_id: str, request: Request, principal: CurrentPrincipal
) -> HistoryOut:
    async with state_of(request).uow() as uow:
        project = await service.visible_project(uow, principal, project_id)
        steps = await service.history(uow, project_id)
    return HistoryOut(
        project_id=project_id,
        status=project.status,
        steps=[StepOut.model_validate(s, from_attributes=True) for s in steps],
    )


@router.get(
    "/projects/{project_id}/form.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the 附件2 form"}},
)
async def project_form(project_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    async with state_of(request).uow() as uow:
        project = await service.visible_project(uow, principal, project_id)
        org = await uow.session.get(OrgReplica, project.applicant_org_id)
        steps = await service.history(uow, project_id)
    content = pdf.project_form_pdf(
        project, org.name if org else project.applicant_org_id, [_step_line(s) for s in steps]
    )
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="project-{project_id}.pdf"'},
    )


STEP_LABELS = {
    "created": "填报",
    "amended": "修改",
    "submitted": "提交备案",
    "approve": "准予备案",
    "reject": "不予备案",
    "return": "退回修改",
}


def _step_line(step: ProjectStep) -> tuple[str, str | None, datetime]:
    return STEP_LABELS.get(step.action, step.action), step.opinion, step.at


# --- completions ------------------------------------------------------------------------------


class CompletionIn(BaseModel):
    id_number: str = Field(max_length=40)
    name: str = Field(max_length=100)
    hours: Decimal | float | str
    passed: bool


_ROWS = TypeAdapter(list[CompletionIn])


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (413) when it is larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = await request.body()
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return body


async def _roster_rows(request: Request) -> list[service.RawRow]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        await _read_limited(request, MAX_FILE_BYTES + 64 * 1024)
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RuleViolation(
                "send the roster as the multipart field 'file'", code="file_required"
            )
        return read_roster(upload.filename or "", await upload.read())
    raw = await _read_limited(request, MAX_JSON_BYTES)
    try:
        rows = _ROWS.validate_python(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise RuleViolation(
            "the body is a JSON array of {id_number, name, hours, passed}: "
            + str(exc).splitlines()[0],
            code="validation_error",
        ) from exc
    return [service.RawRow(r.id_number, r.name, r.hours, r.passed) for r in rows]


@router.post(
    "/projects/{project_id}/completions",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": CompletionIn.model_json_schema()}
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def upload_completions(
    project_id: str, request: Request, principal: CurrentPrincipal
) -> RosterOut:
    """The organiser's roster of an approved project: JSON rows, or a CSV (UTF-8/GBK) or XLSX
    file with columns id_number, name, hours, passed. Each row is reported; each passed row gets
    exactly one certificate; uploading the same roster again changes nothing."""
    rows = await _roster_rows(request)
    async with state_of(request).uow() as uow:
        result = await service.record_completions(uow, principal, project_id, rows)
        await uow.commit()
    return RosterOut(
        project_id=result.project_id,
        rows=len(result.results),
        issued=result.count("issued"),
        recorded=result.count("recorded"),
        unchanged=result.count("unchanged"),
        rejected=result.count("rejected"),
        results=result.results,
    )


# --- certificates -----------------------------------------------------------------------------


@router.get(
    "/certificates/{code}",
    response_model=CertificateOut,
    responses={429: PROBLEM_RESPONSES[422] | {"description": "Too many lookups; see Retry-After"}},
)
async def verify_certificate(code: str, request: Request) -> Any:
    """Public verification by code, no token: the ID number is masked. Rate limited per client
    address (``CE_REGISTRY_VERIFY_LIMIT`` lookups per ``CE_REGISTRY_VERIFY_WINDOW_S``, default 60
    a minute; a route rate of the service spec): beyond it 429 ``rate_limited`` with
    ``Retry-After``."""
    state = state_of(request)
    async with state.uow() as uow:
        cert, project = await service.certificate_by_code(uow, code)
    return certificate_view(cert, project)


@router.get("/certificates")
async def list_certificates(
    request: Request,
    principal: CurrentPrincipal,
    mine: bool = False,
    project_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CertificatePage:
    """``mine=true`` (personnel): the caller's certificates, matched by their ID number;
    ``project_id``: a project's certificates (its organiser, the city bureau)."""
    async with state_of(request).uow() as uow:
        stmt = select(Certificate)
        if mine:
            if principal.role != "personnel":
                raise Forbidden("mine=true is for personnel tokens", code="role_not_allowed")
            person = await service.person_of(uow, principal)
            stmt = stmt.where(Certificate.id_number == (person.id_number if person else ""))
        elif project_id:
            await service.visible_project(uow, principal, project_id)
        elif not principal.is_city:
            raise RuleViolation("name mine=true or a project_id", code="filter_required")
        if project_id:
            stmt = stmt.where(Certificate.project_id == project_id)
        rows = list(
            (
                await uow.session.scalars(
                    paginate(stmt, Certificate.created_at, Certificate.id, cursor, limit)
                )
            ).all()
        )
        items, next_cursor = page(rows, limit)
        projects = {p.id: p for p in await _projects(uow, {c.project_id for c in items})}
    return CertificatePage(
        items=[certificate_view(c, projects[c.project_id]) for c in items], next_cursor=next_cursor
    )


async def _projects(uow: UnitOfWork, ids: set[str]) -> list[Project]:
    if not ids:
        return []
    return list((await uow.session.scalars(select(Project).where(Project.id.in_(ids)))).all())


@router.get(
    "/certificates/{code}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the certificate"}},
)
async def certificate_pdf(code: str, request: Request, principal: CurrentPrincipal) -> Response:
    """The printable certificate with a QR code of its public verification URL (its holder, the
    organiser, the city bureau)."""
    async with state_of(request).uow() as uow:
        cert, project = await service.certificate_by_code(uow, code)
        if not await service.may_read_certificate(uow, principal, cert):
            raise NotFound("no e-certificate has this code", code="certificate_not_found")
    url = registry_of(state_of(request)).verification_url(str(request.base_url), cert.code)
    content = pdf.certificate_pdf(cert, project, mask_id_number(cert.id_number), url)
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{cert.code}.pdf"'},
    )


class RevokeIn(BaseModel):
    reason: str = Field(max_length=2000)


@router.post("/certificates/{code}/revoke")
async def revoke_certificate(
    code: str, body: RevokeIn, request: Request, principal: CurrentPrincipal
) -> CertificateOut:
    async with state_of(request).uow() as uow:
        cert, project = await service.revoke_certificate(uow, principal, code, body.reason)
        view = certificate_view(cert, project)
        await uow.commit()
    return view


# --- exam-staff cards -------------------------------------------------------------------------


@router.post("/exam-cards", status_code=201, response_model=ExamCardOut)
async def issue_exam_card(
    body: service.ExamCardFields,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    """The city exam centre issues a 学时登记卡: one per person and year."""

    async def create(uow: UnitOfWork) -> dict[str, Any]:
        card = await service.issue_exam_card(uow, principal, body)
        return card_view(card).model_dump(mode="json")

    return await idempotency.create_once(
        state_of(request).uow, principal.sub, idempotency_key, body.model_dump(mode="json"), create
    )


@router.get("/exam-cards/{card_no}")
async def get_exam_card(card_no: str, request: Request, principal: CurrentPrincipal) -> ExamCardOut:
    """A card, for the exam centre that issued it and the city bureau; to any other exam centre
    it does not exist (the card carries the holder's identity)."""
    _exam_centre_or_city(principal)
    async with state_of(request).uow() as uow:
        card = await uow.session.scalar(
            select(ExamCard).where(ExamCard.card_no == normalise_code(card_no))
        )
    if card is None or not (principal.is_city or card.issued_by_org_id == principal.org_id):
        raise NotFound("no exam card has this number", code="exam_card_not_found")
    return card_view(card)


def _exam_centre_or_city(principal: Principal) -> None:
    if not (principal.is_city or principal.role == "exam_center"):
        raise Forbidden(
            "exam cards are read by the exam centre and the city", code="role_not_allowed"
        )
