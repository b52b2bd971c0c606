"""HTTP routes of the review service (API.md: orgs and review). Thin: parse, call, shape."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, or_, select

from libs.common import idempotency
from libs.common.asciitext import EntityId, FoldedText
from libs.common.auth import CurrentPrincipal, require_role
from libs.common.errors import DomainError, NotFound
from libs.common.pagination import page, paginate
from libs.common.service import StateDep, UowDep
from libs.common.uow import UnitOfWork
from services.review import directory, history, oversight, service
from services.review.models import (
    Org,
    ReviewTask,
    TaskDecision,
    TaskStage,
    TaskStatus,
)
from services.review.schemas import (
    BulkDecided,
    BulkDecisionsOut,
    BulkFailed,
    ClaimHistoryOut,
    OrgDetail,
    OrgListItem,
    OrgOut,
    OrgPage,
    TaskOut,
    TaskPage,
)
from services.review.scope import scope_org_ids

router = APIRouter(prefix="/v1")


class OrgIn(BaseModel):
    code: FoldedText = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(max_length=20)
    parent_id: EntityId | None = None


def org_view(org: Org) -> OrgOut:
    return OrgOut(
        id=org.id,
        code=org.code,
        name=org.name,
        type=org.type,
        parent_id=org.parent_id,
        active=org.active is not False,
        self_appraising=bool(org.self_appraising),
    )


@router.post("/orgs", status_code=201)
async def create_org(
    body: OrgIn,
    state: StateDep,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> OrgOut:
    require_role(principal, "city_admin")

    async def create(uow: UnitOfWork) -> dict[str, object]:
        return org_view(await service.create_org(uow, **body.model_dump())).model_dump()

    return OrgOut.model_validate(
        await idempotency.create_once(
            state.uow, principal.sub, idempotency_key, body.model_dump(), create
        )
    )


@router.get("/orgs/{org_id}")
async def get_org(org_id: str, uow: UowDep, principal: CurrentPrincipal) -> OrgDetail:
    """The org, the orgs above it (``ancestors``, the root first: a tree page's breadcrumb)
    and how many are directly under it (``children``)."""
    async with uow:
        org = await uow.session.get(Org, org_id)
        if org is None:
            raise NotFound(f"org {org_id} not found", code="org_not_found")
        above = await directory.ancestors(uow, org)
        children = await directory.children_count(uow, [org.id])
        return OrgDetail(
            **org_view(org).model_dump(),
            children=children.get(org.id, 0),
            ancestors=[org_view(a) for a in above],
        )


@router.get("/orgs")
async def list_orgs(
    uow: UowDep,
    principal: CurrentPrincipal,
    type: str | None = None,
    parent_id: str | None = None,
    q: Annotated[
        str | None, Query(max_length=100, description="part of the org's name or code")
    ] = None,
    active: Annotated[bool | None, Query(description="only active (or deactivated) orgs")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OrgPage:
    """The directory in creation order, with ``total`` (every org the filters match) and, per
    org, how many orgs are directly under it (``children``: the tree's expand marker). Browse
    the tree by ``parent_id``; search it by ``q``. Three SQL statements a page."""
    where: list[ColumnElement[bool]] = []
    if type:
        where.append(Org.type == type)
    if parent_id:
        where.append(Org.parent_id == parent_id)
    if q and (needle := q.strip()):
        where.append(
            or_(
                Org.name.contains(needle, autoescape=True),
                Org.code.contains(needle, autoescape=True),
            )
        )
    if active is not None:
        where.append(Org.active.is_(active))
    stmt = paginate(select(Org).where(*where), Org.created_at, Org.id, cursor, limit)
    async with uow:
        rows = list((await uow.session.scalars(stmt)).all())
        total = await uow.session.scalar(select(func.count(Org.id)).where(*where))
        items, next_cursor = page(rows, limit)
        children = await directory.children_count(uow, [o.id for o in items])
    return OrgPage(
        items=[
            OrgListItem(**org_view(o).model_dump(), children=children.get(o.id, 0)) for o in items
        ],
        next_cursor=next_cursor,
        total=int(total or 0),
    )


@router.get("/review-tasks")
async def list_tasks(
    state: StateDep,
    principal: CurrentPrincipal,
    filters: Annotated[oversight.TaskQuery, Depends()],
    status: TaskStatus | None = None,
    stage: TaskStage | None = None,
    claim_id: str | None = None,
    sort: Annotated[
        Literal["created_at", "-created_at", "oldest", "newest"],
        Query(description="created_at / oldest: oldest first (default); -created_at / newest"),
    ] = "created_at",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TaskPage:
    """Oldest first, with ``total`` (every task the filters match). Each task shows what the
    reviewer checks: the person and unit, hours, expected credits, warnings, the claimed dates
    and months, evidence ids, the references cited, the cited training project with its filing
    status at the registry (``project``: ``{id, name, year, status, opinion}``, ``status``
    submitted / approved / returned / rejected, or unknown until the filing reaches review; null
    if the claim cites no project) and, for special leave, ``leave_kind`` and ``leave_reason``.
    Filters: ``category``, ``q`` or ``person`` (a name or part of it, or a masked ID number or
    its end), ``verified_evidence``, ``min_age`` (open at least N working days), ``org_id``
    (the city's unrouted queue is ``org_id=unrouted``). A page is four SQL statements whatever
    its size (scope, page, total, the rows' projects and units)."""
    async with state.uow() as uow:
        scope = await scope_org_ids(uow, principal)
        where = filters.clauses(state.today())
        if scope is not None:
            where.append(ReviewTask.org_id.in_(scope))
        if status:
            where.append(ReviewTask.status == status)
        if stage:
            where.append(ReviewTask.stage == stage)
        if claim_id:
            where.append(ReviewTask.claim_id == claim_id)
        stmt = paginate(
            select(ReviewTask).where(*where),
            ReviewTask.created_at,
            ReviewTask.id,
            cursor,
            limit,
            descending=sort in ("-created_at", "newest"),
        )
        rows = list((await uow.session.scalars(stmt)).all())
        total = await uow.session.scalar(select(func.count(ReviewTask.id)).where(*where))
        items, next_cursor = page(rows, limit)
        views = await service.task_views(uow, items)
    return TaskPage(items=views, next_cursor=next_cursor, total=int(total or 0))


@router.get("/review-tasks/{task_id}")
async def get_task(task_id: str, uow: UowDep, principal: CurrentPrincipal) -> TaskOut:
    """One task in the caller's scope (404 ``task_not_found`` otherwise), as the list shows it:
    the claim, its evidence and references, the cited project's filing status (``project``) and,
    for special leave, ``leave_kind`` and ``leave_reason``."""
    async with uow:
        return await service.one_task_view(uow, await service.visible_task(uow, principal, task_id))


class DecisionIn(BaseModel):
    decision: TaskDecision
    reason: str | None = Field(default=None, max_length=2000)


@router.post("/review-tasks/{task_id}/decision")
async def decide(
    task_id: str, body: DecisionIn, uow: UowDep, principal: CurrentPrincipal
) -> TaskOut:
    async with uow:
        task = await service.decide(uow, principal, task_id, body.decision, body.reason)
        view = await service.one_task_view(uow, task)
        await uow.commit()
        return view


class BulkDecisionIn(DecisionIn):
    task_ids: list[EntityId] = Field(min_length=1, max_length=500)
    only_verified: bool = Field(
        default=False,
        description="refuse (422 evidence_not_verified) tasks without verified evidence",
    )


@router.post("/review-tasks/decisions")
async def decide_many(
    body: BulkDecisionIn, state: StateDep, principal: CurrentPrincipal
) -> BulkDecisionsOut:
    """Each task is decided in its own transaction: one failure does not undo the others."""
    async with state.uow() as uow:
        # a deactivated org's token is refused once (403 org_inactive), not once per task
        await scope_org_ids(uow, principal)
    results: list[BulkDecided | BulkFailed] = []
    for task_id in dict.fromkeys(body.task_ids):
        try:
            async with state.uow() as uow:
                task = await service.decide(
                    uow,
                    principal,
                    task_id,
                    body.decision,
                    body.reason,
                    only_verified=body.only_verified,
                )
                view = await service.one_task_view(uow, task)
                await uow.commit()
            results.append(BulkDecided(task_id=task_id, status=200, task=view))
        except DomainError as exc:
            results.append(
                BulkFailed(task_id=task_id, status=exc.status, code=exc.code, detail=exc.detail)
            )
    decided = sum(1 for r in results if isinstance(r, BulkDecided))
    return BulkDecisionsOut(results=results, decided=decided, failed=len(results) - decided)


@router.get("/claims/{claim_id}/history")
async def claim_history(claim_id: str, uow: UowDep, principal: CurrentPrincipal) -> ClaimHistoryOut:
    """Every step of the claim's review, chained by hash; ``verified`` says whether the chain
    checks out (``broken_step`` names the first step that does not)."""
    async with uow:
        scope = await scope_org_ids(uow, principal)
        rows, check = await history.chain_of(uow, claim_id)
    visible = (
        scope is None
        or any(r.org_id in scope for r in rows)
        or (
            principal.person_id is not None
            and any(r.actor == f"person:{principal.person_id}" for r in rows)
        )
    )
    if not rows or not visible:
        raise NotFound(f"no history for claim {claim_id} in your scope", code="claim_not_found")
    return ClaimHistoryOut(
        claim_id=claim_id,
        steps=[history.step_view(r) for r in rows],
        verified=check.verified,
        broken_step=check.broken_step,
    )
