"""HTTP routes of the sync service: the outbound queue and its summary."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from libs.common.auth import OPS_ROLES, CurrentPrincipal, require_role
from libs.common.errors import DomainError
from libs.common.pagination import page, paginate
from libs.common.service import StateDep, UowDep
from services.sync.learning import ingest_learning_records
from services.sync.models import OutboundRecord, RecordStatus
from services.sync.province import ProvinceError
from services.sync.reconciliation import reconcile
from services.sync.schemas import (
    LearningRecordsOut,
    ReconciliationOut,
    RecordOut,
    RecordPage,
    SyncSummary,
)
from services.sync.sender import summary
from services.sync.state import sync_of

router = APIRouter(prefix="/v1")
OVERSIGHT = OPS_ROLES  # summary, reconciliations, every record


def record_view(r: OutboundRecord) -> RecordOut:
    return RecordOut(
        record_id=r.id,
        source=r.source,
        claim_id=r.claim_id,
        person_id=r.person_id,
        year=r.year,
        subject=r.subject,
        hours=r.hours,
        status=r.status,
        attempts=r.attempts,
        last_error=r.last_error,
        receipt=r.receipt,
        registered_at=r.registered_at.isoformat() if r.registered_at else None,
        created_at=r.created_at.isoformat(),
    )


@router.get("/sync/records")
async def list_records(
    uow: UowDep,
    principal: CurrentPrincipal,
    status: RecordStatus | None = None,
    person_id: str | None = None,
    claim_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecordPage:
    require_role(principal, *OVERSIGHT, "system")
    stmt = select(OutboundRecord)
    if principal.role == "system":
        # the e-learning platform's integration reads the status of the records it pushed only
        stmt = stmt.where(OutboundRecord.source == "city_platform")
    if status:
        stmt = stmt.where(OutboundRecord.status == status)
    if person_id:
        stmt = stmt.where(OutboundRecord.person_id == person_id)
    if claim_id:
        stmt = stmt.where(OutboundRecord.claim_id == claim_id)
    async with uow:
        stmt = paginate(stmt, OutboundRecord.created_at, OutboundRecord.id, cursor, limit)
        rows = list((await uow.session.scalars(stmt)).all())
    items, next_cursor = page(rows, limit)
    return RecordPage(items=[record_view(r) for r in items], next_cursor=next_cursor)


@router.get("/sync/summary")
async def sync_summary(uow: UowDep, state: StateDep, principal: CurrentPrincipal) -> SyncSummary:
    require_role(principal, *OVERSIGHT)
    breaker = sync_of(state).province_client.breaker.state
    async with uow:
        return SyncSummary.model_validate(await summary(uow, breaker))


MAX_LEARNING_RECORDS = 1000
LEARNING_RECORDS_BODY_LIMIT = 2 * 1024 * 1024  # 1,000 records of up to ~2 KiB each


class LearningRecordsIn(BaseModel):
    # each record is checked on its own (per-record outcome), so the items stay loose here;
    # the body limit bounds them (LEARNING_RECORDS_BODY_LIMIT)
    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_LEARNING_RECORDS)


@router.post("/learning-records", status_code=202)
async def learning_records(
    body: LearningRecordsIn, uow: UowDep, principal: CurrentPrincipal
) -> LearningRecordsOut:
    """The city e-learning platform's batch push: ``{record_id, id_number, year, subject,
    hours, course, completed_at}`` each; per-record outcome, never all-or-nothing.

    At most 1,000 records and a 2 MiB body (413 beyond it)."""
    require_role(principal, "system")
    async with uow:
        result = await ingest_learning_records(uow, body.records)
        await uow.commit()
        return LearningRecordsOut.model_validate(result)


class ReconciliationIn(BaseModel):
    year: int = Field(ge=2000, le=2100)
    repair: bool = False  # re-queue what the province lacks, void what it holds beyond ours


@router.post("/reconciliations")
async def reconciliation(
    body: ReconciliationIn, state: StateDep, principal: CurrentPrincipal
) -> ReconciliationOut:
    """Our registered totals per person and year against the province's (the title system
    reads the province, so the two must agree); with ``repair: true`` the differences are
    repaired, else (the default) only listed under ``repair``."""
    require_role(principal, *OVERSIGHT)
    try:
        async with state.uow() as uow:
            result = await reconcile(
                uow, sync_of(state).province_client, body.year, repair=body.repair
            )
    except ProvinceError as exc:
        raise DomainError(
            f"the province platform did not answer: {exc}",
            code="province_unavailable",
            status=503,
            title="The province platform is unavailable",
        ) from exc
    return ReconciliationOut.model_validate(result)
