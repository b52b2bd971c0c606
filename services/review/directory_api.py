"""HTTP routes of the living directory and of oversight (API.md, review): change and import orgs,
assign unrouted tasks, the queues under an authority, the decisions export, the history check."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from libs.common.auth import CurrentPrincipal, require_role
from libs.common.downloads import file_headers
from libs.common.errors import RuleViolation
from libs.common.problems import PROBLEM_MEDIA_TYPE, Problem
from libs.common.service import StateDep, UowDep
from libs.common.tabular import write_csv, write_xlsx
from services.review import directory, history, oversight, routing, service
from services.review.api import org_view
from services.review.schemas import OrgOut, TaskOut

router = APIRouter(prefix="/v1", tags=["directory and oversight"])

MAX_IMPORT_BYTES = 5 * 1024 * 1024


class OrgPatch(BaseModel):
    """Only the fields sent change; ``parent_id: null`` moves the org to no parent."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    code: str | None = Field(default=None, min_length=1, max_length=64)
    parent_id: str | None = None
    active: bool | None = None
    self_appraising: bool | None = Field(
        default=None,
        description="职称自主评聘单位 (五(二)), units only (422 self_appraising_not_unit); "
        "their staff's hours still reach the province",
    )


@router.patch("/orgs/{org_id}")
async def patch_org(
    org_id: str, body: OrgPatch, uow: UowDep, principal: CurrentPrincipal
) -> OrgOut:
    """Rename, re-code, move (``parent_id``), (de)activate (``active``) an org, or mark a unit
    self-appraising (``self_appraising``, 职称自主评聘单位). A deactivated
    org takes no new claims; its open tasks move to its parent authority (or the city's unrouted
    queue). A refused change (``org_cycle``, ``invalid_org_parent``, ``duplicate_org_code``,
    ``parent_inactive``, ``unknown_parent_org``) is a 422 and changes nothing."""
    require_role(principal, "city_admin")
    sent = body.model_fields_set
    change = directory.OrgChange()
    for name in ("name", "code", "active", "self_appraising"):
        value = getattr(body, name)
        if name in sent and value is not None:
            setattr(change, name, value)
    if "parent_id" in sent:
        change.parent_id = body.parent_id
    async with uow:
        org = await directory.update_org(uow, org_id, change, actor=principal.sub)
        out = org_view(org)
        await uow.commit()
    return out


class ImportRow(BaseModel):
    line: int
    code: str
    status: Literal["created", "updated", "unchanged"]
    id: str


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    rows: list[ImportRow]


class RowError(BaseModel):
    code: str  # the rule: unknown_parent_code, duplicate_code_in_file, invalid_org_parent, …
    detail: str


class RefusedRow(BaseModel):
    line: int  # as Excel shows it (the header is line 1)
    code: str
    errors: list[RowError]


class ImportRejected(Problem):
    """Nothing was imported: a bad file, or (``import_rejected``) every bad row of the file and
    why; ``rows`` is present only then."""

    rows: list[RefusedRow] = Field(default_factory=list)


@router.post(
    "/orgs/import",
    responses={
        422: {
            "description": "A bad file (bad_header, unreadable_encoding, empty_file, "
            "too_many_rows, file_too_large) or bad rows (import_rejected, with rows[]): "
            "nothing was imported",
            "model": ImportRejected,
            "content": {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ImportRejected"}}
            },
        }
    },
)
async def import_orgs(
    uow: UowDep,
    principal: CurrentPrincipal,
    file: Annotated[
        UploadFile, File(description="CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX, at most 5 MiB")
    ],
) -> ImportResult:
    """Create or update orgs by ``code`` from a table with the columns ``code, name, type,
    parent_code``. All or nothing: a file with a bad row imports nothing, and the 422 problem
    (``import_rejected``) lists every bad row (``rows: [{line, code, errors: [{code, detail}]}]``).
    An unchanged row is a no-op, so the same file can be imported again."""
    require_role(principal, "city_admin")
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise RuleViolation("an import file is at most 5 MiB; split it", code="file_too_large")
    table = await directory.read_import(data, file.filename)
    async with uow:
        result = await directory.import_orgs(uow, table, actor=principal.sub)
        await uow.commit()
    return ImportResult.model_validate(result)


class AssignIn(BaseModel):
    org_id: str


@router.post("/review-tasks/{task_id}/assign")
async def assign_task(
    task_id: str, body: AssignIn, uow: UowDep, principal: CurrentPrincipal
) -> TaskOut:
    """(city_admin) Give an open authority-stage task — those with no valid route wait in the
    unrouted queue, ``GET /v1/review-tasks?org_id=unrouted`` — to an active district or
    department."""
    require_role(principal, "city_admin")
    async with uow:
        task = await routing.assign(uow, task_id, body.org_id, actor=principal.sub)
        view = await service.one_task_view(uow, task)
        await uow.commit()
    return view


class QueueCounts(BaseModel):
    unit: int
    authority: int


class OrgQueue(BaseModel):
    org_id: str
    code: str
    name: str
    type: str
    active: bool
    open: QueueCounts
    oldest_age_working_days: int | None
    overdue: int


class Queues(BaseModel):
    org_id: str
    as_of: date
    sla_working_days: int
    orgs: list[OrgQueue]


@router.get("/review-queues")
async def review_queues(
    state: StateDep,
    principal: CurrentPrincipal,
    org_id: str,
    sla_working_days: Annotated[int | None, Query(ge=1, le=250)] = None,
) -> Queues:
    """(district/department admins for their own org; city_admin for any) The queue of the org
    and of every org directly under it, read-only: open tasks by stage, the oldest open task's
    age in Chinese working days, and how many are overdue against the SLA (default
    ``CE_REVIEW_SLA_WORKING_DAYS``, 10)."""
    sla = sla_working_days or state.settings.review_sla_working_days
    async with state.uow() as uow:
        authority = await oversight.authority_in_scope(uow, principal, org_id)
        result = await oversight.queues(uow, authority, today=state.today(), sla=sla)
    return Queues.model_validate(result)


@router.get(
    "/review-decisions",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            },
            "description": "one row per approval or rejection",
        }
    },
)
async def export_decisions(
    uow: UowDep,
    principal: CurrentPrincipal,
    org_id: str,
    since: Annotated[date, Query(alias="from")],
    until: Annotated[date, Query(alias="to")],
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    """(district/department admins for their own org; city_admin) Every approval and rejection
    by the authority and the orgs under it between ``from`` and ``to`` (Beijing dates,
    inclusive): who decided what, when, with which reason — for the bureau's files."""
    async with uow:
        authority = await oversight.authority_in_scope(uow, principal, org_id)
        rows = await oversight.decisions(uow, authority, since=since, until=until)
    name = f"decisions-{authority.code}-{since.isoformat()}-{until.isoformat()}.{format}"
    headers = file_headers(name)
    if format == "csv":
        body = write_csv(oversight.EXPORT_COLUMNS, rows)
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)
    body = await asyncio.to_thread(write_xlsx, "decisions", oversight.EXPORT_COLUMNS, rows)
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=headers,
    )


class BrokenStep(BaseModel):
    claim_id: str
    step: int


class HistoryCheck(BaseModel):
    checked: int
    broken: list[BrokenStep]


@router.get("/admin/history/verify")
async def verify_history(uow: UowDep, principal: CurrentPrincipal) -> HistoryCheck:
    """(city_admin) Check every claim's hash chain; ``broken`` names each claim whose chain does
    not check out and its first bad step (edited, deleted or inserted rows)."""
    require_role(principal, "city_admin")
    async with uow:
        result = await history.verify_all(uow)
    return HistoryCheck.model_validate(result)
