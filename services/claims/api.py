"""HTTP routes of the claims service (API.md: persons, claims, transcripts). Thin layer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from libs.common import idempotency
from libs.common.auth import CurrentPrincipal, require_role
from libs.common.events import Affiliation
from libs.common.pagination import page, paginate
from libs.common.service import state_of
from libs.common.uow import UnitOfWork
from services.claims import evidence, ledger, persons, service
from services.claims.models import Claim
from services.claims.state import claims_of

router = APIRouter(prefix="/v1")
# --- persons --------------------------------------------------------------------------------


class PersonIn(BaseModel):
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=30)
    affiliation: Affiliation


@router.post("/persons", status_code=201)
async def register_person(
    body: PersonIn,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    state = state_of(request)

    async def create(uow: UnitOfWork) -> dict[str, Any]:
        person = await persons.register_person(
            uow,
            principal,
            **body.model_dump(exclude={"affiliation"}),
            affiliation=body.affiliation,
            today=state.today(),
        )
        return persons.person_view(person)

    return await idempotency.create_once(
        state.uow, principal.sub, idempotency_key, body.model_dump(), create
    )


@router.get("/persons/{person_id}")
async def get_person(person_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    async with state_of(request).uow() as uow:
        person = await persons.get_person(uow, principal, person_id)
        return persons.person_view(person)


class TransferIn(BaseModel):
    affiliation: Affiliation


@router.post("/persons/{person_id}/transfer")
async def transfer_person(
    person_id: str, body: TransferIn, request: Request, principal: CurrentPrincipal
) -> Any:
    async with state_of(request).uow() as uow:
        person = await persons.transfer_person(uow, principal, person_id, body.affiliation)
        view = persons.person_view(person)
        await uow.commit()
        return view


@router.get("/me")
async def me(request: Request, principal: CurrentPrincipal) -> Any:
    require_role(principal, "personnel")
    state = state_of(request)
    async with state.uow() as uow:
        person = await persons.my_person(uow, principal)
        year = state.today().year
        summary = await ledger.transcript(uow, person, year)
        return {
            **persons.person_view(person),
            "year": year,
            "summary": {k: summary[k] for k in ("required", "credited", "pending", "compliant")},
        }


@router.get("/persons/{person_id}/transcripts/{year}")
async def get_transcript(
    person_id: str, year: int, request: Request, principal: CurrentPrincipal
) -> Any:
    async with state_of(request).uow() as uow:
        person = await persons.get_person(uow, principal, person_id)
        return await ledger.transcript(uow, person, year)


# --- evidence -------------------------------------------------------------------------------

MAX_EVIDENCE_BYTES = 10 * 1024 * 1024


@router.post("/evidence", status_code=201)
async def upload_evidence(
    request: Request,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="PDF, JPEG or PNG, at most 10 MiB")],
) -> Any:
    require_role(principal, "personnel")  # evidence backs one's own claims
    state = state_of(request)
    data = await file.read(MAX_EVIDENCE_BYTES + 1)
    async with state.uow() as uow:
        stored = await evidence.store_evidence(
            uow,
            principal,
            claims_of(state).evidence_store,
            data=data,
            filename=file.filename,
            max_bytes=MAX_EVIDENCE_BYTES,
        )
        view = evidence_view(stored)
        await uow.commit()
        return view


def evidence_view(stored: Any) -> dict[str, Any]:
    return {
        "id": stored.id,
        "sha256": stored.sha256,
        "content_type": stored.content_type,
        "size": stored.size,
        "filename": stored.filename,
        "created_at": stored.created_at.isoformat(),
    }


@router.get("/evidence/{evidence_id}")
async def get_evidence(evidence_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    async with state_of(request).uow() as uow:
        return evidence_view(await evidence.readable_evidence(uow, principal, evidence_id))


@router.get(
    "/evidence/{evidence_id}/content",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in sorted(evidence.ALLOWED_CONTENT_TYPES)}}},
)
async def get_evidence_content(
    evidence_id: str, request: Request, principal: CurrentPrincipal
) -> FileResponse:
    """The file itself, for the uploader and the reviewers of a claim that cites it."""
    state = state_of(request)
    async with state.uow() as uow:
        stored = await evidence.readable_evidence(uow, principal, evidence_id)
    return FileResponse(
        claims_of(state).evidence_store.path(stored.storage_key),
        media_type=stored.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
        content_disposition_type="inline",
    )


# --- claims ---------------------------------------------------------------------------------


class CreditIn(BaseModel):
    subject: Literal["public", "professional"]
    hours: float


class ClaimIn(BaseModel):
    person_id: str
    year: int = Field(ge=2000, le=2100)
    category: str
    subject: Literal["public", "professional"] | None = None
    title: str = Field(min_length=1, max_length=300)
    hours: float | None = None
    start_date: date | None = None
    end_date: date | None = None
    months: int | None = None
    reference_no: str | None = Field(default=None, max_length=200)
    certificate_code: str | None = Field(default=None, max_length=200)
    exam_card_no: str | None = Field(default=None, max_length=200)
    project_id: str | None = Field(
        default=None, max_length=64, description="a training project filed with the city (备案)"
    )
    credits: list[CreditIn] | None = None
    evidence_ids: list[str] = Field(default_factory=list, max_length=50)


def claim_view(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id,
        "person_id": claim.person_id,
        "year": claim.year,
        "category": claim.category,
        "subject": claim.subject,
        "title": claim.title,
        "revision": claim.revision,
        "status": claim.status,
        "stage": claim.stage,
        "requested_hours": float(claim.requested_hours),
        "expected_credits": claim.expected_credits,
        "warnings": claim.warnings,
        "credits": claim.credits,
        "rejection_reason": claim.rejection_reason,
        "sync_status": claim.sync_status,
        "evidence_ids": claim.body.get("evidence_ids", []),
        "created_at": claim.created_at.isoformat(),
        "updated_at": claim.updated_at.isoformat(),
    }


@router.post("/claims", status_code=201)
async def submit_claim(
    body: ClaimIn,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    state = state_of(request)
    data = body.model_dump(mode="json", exclude_none=True)

    async def create(uow: UnitOfWork) -> dict[str, Any]:
        claim = await service.submit_claim(uow, principal, data, now=state.now())
        return claim_view(claim)

    return await idempotency.create_once(state.uow, principal.sub, idempotency_key, data, create)


@router.get("/claims/{claim_id}")
async def get_claim(claim_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    async with state_of(request).uow() as uow:
        return claim_view(await service.get_claim(uow, principal, claim_id))


@router.get("/claims")
async def list_claims(
    request: Request,
    principal: CurrentPrincipal,
    person_id: str,
    year: int | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    async with state_of(request).uow() as uow:
        await persons.get_person(uow, principal, person_id)
        stmt = select(Claim).where(Claim.person_id == person_id)
        if year is not None:
            stmt = stmt.where(Claim.year == year)
        if status:
            stmt = stmt.where(Claim.status == status)
        rows = list(
            (
                await uow.session.scalars(paginate(stmt, Claim.created_at, Claim.id, cursor, limit))
            ).all()
        )
    items, next_cursor = page(rows, limit)
    return {"items": [claim_view(c) for c in items], "next_cursor": next_cursor}


@router.post("/claims/{claim_id}/withdraw")
async def withdraw_claim(claim_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    async with state_of(request).uow() as uow:
        claim = await service.withdraw_claim(uow, principal, claim_id)
        view = claim_view(claim)
        await uow.commit()
        return view


@router.post("/claims/{claim_id}/revisions", status_code=201)
async def revise_claim(
    claim_id: str, body: ClaimIn, request: Request, principal: CurrentPrincipal
) -> Any:
    state = state_of(request)
    async with state.uow() as uow:
        claim = await service.revise_claim(
            uow,
            principal,
            claim_id,
            body.model_dump(mode="json", exclude_none=True),
            now=state.now(),
        )
        view = claim_view(claim)
        await uow.commit()
        return view
