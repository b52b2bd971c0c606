"""HTTP routes of the claims service (API.md: persons, evidence, claims, transcripts, the
compliance report, title readiness). Thin layer: scope in :mod:`scope`, use cases in
:mod:`persons`, :mod:`service`, :mod:`ledger`, the read model in :mod:`compliance`, files in
:mod:`exports`; every JSON answer is a model of :mod:`views`."""

from __future__ import annotations

import asyncio
import os
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import pydantic_core
from fastapi import APIRouter, File, Header, Path, Query, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import ColumnElement
from starlette.background import BackgroundTask

from libs.common import idempotency, workdays
from libs.common.asciitext import Phone
from libs.common.auth import CurrentPrincipal, require_role
from libs.common.downloads import file_headers
from libs.common.errors import NotFound, RuleViolation
from libs.common.events import Affiliation
from libs.common.idnumber import mask_id_number
from libs.common.pagination import decode_cursor, encode_cursor
from libs.common.uow import UnitOfWork
from services.claims import (
    compliance,
    contacts,
    evidence,
    exports,
    ledger,
    listing,
    persons,
    planner,
    rules,
    service,
)
from services.claims.commands import ClaimCommand
from services.claims.deps import State, Uow
from services.claims.models import Claim, ClaimStatus, Evidence, Person, ReviewStage
from services.claims.scope import org_scope
from services.claims.state import claims_of
from services.claims.views import (
    ClaimListItem,
    ClaimPage,
    ClaimPerson,
    ClaimView,
    ComplianceByOrg,
    ComplianceReport,
    CreditView,
    EvidenceView,
    MeSummary,
    MeView,
    PersonListItem,
    PersonPage,
    PersonView,
    PlanView,
    TitleReadiness,
    Transcript,
    dump,
)

router = APIRouter(prefix="/v1")
# --- persons --------------------------------------------------------------------------------


class PersonIn(BaseModel):
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    phone: Phone | None = None
    affiliation: Affiliation


def person_view(person: Person) -> PersonView:
    """The full view, ID number included: only the person and in-scope reviewers ever reach a
    person (everyone else gets 404); lists for wider audiences (reports, review tasks) carry the
    masked number only."""
    return PersonView(
        id=person.id,
        name=person.name,
        id_number=person.id_number,
        id_number_masked=mask_id_number(person.id_number),
        phone=person.phone,
        affiliation=Affiliation(kind=person.affiliation_kind, org_id=person.org_id),  # type: ignore[arg-type]
        created_at=person.created_at.isoformat(),
    )


@router.post("/persons", status_code=201)
async def register_person(
    body: PersonIn,
    state: State,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> PersonView:
    """Register a person in a unit or an agency. 422 problems: ``invalid_id_number``,
    ``unknown_org``, ``affiliation_mismatch``, ``org_inactive`` (the org was deactivated in
    review: it takes no one); 409 ``duplicate_person``."""

    async def create(uow: UnitOfWork) -> dict[str, Any]:
        person = await persons.register_person(
            uow,
            principal,
            **body.model_dump(exclude={"affiliation"}),
            affiliation=body.affiliation,
            today=state.today(),
            identity_key=key.get_secret_value()
            if (key := state.settings.identity_hmac_key)
            else None,
        )
        return dump(person_view(person))

    view = await idempotency.create_once(
        state.uow, principal.sub, idempotency_key, body.model_dump(), create
    )
    return PersonView.model_validate(view)


class PersonsBatchIn(BaseModel):
    persons: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        description="bodies of POST /v1/persons; each validated on its own (a bad row is its "
        "own 422 validation_error result, never the batch's)",
    )


class PersonRowResult(BaseModel):
    """One row's outcome: 201 registered, 200 registered before (same name and org; a re-run),
    or the status and ``code`` that ``POST /v1/persons`` would have answered for it."""

    row: int = Field(description="0-based position in the request")
    status: int
    person: PersonView | None = None
    code: str | None = None
    detail: str | None = None


class PersonsBatchOut(BaseModel):
    registered: int
    existing: int
    refused: int
    results: list[PersonRowResult]


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"


@router.post("/persons/batch")
async def register_persons(
    body: PersonsBatchIn, state: State, principal: CurrentPrincipal
) -> PersonsBatchOut:
    """Register up to 1,000 persons in one transaction, each row on its own (per-row results,
    never all or nothing); re-sending a row that went in before answers 200 with its person. A
    row is refused as ``POST /v1/persons`` would refuse it (e.g. 422 ``org_inactive``)."""
    invalid: dict[int, str] = {}
    rows: list[persons.PersonRow | None] = []
    for raw in body.persons:
        try:
            p = PersonIn.model_validate(raw)
        except ValidationError as exc:
            rows.append(None)
            invalid[len(rows) - 1] = _first_error(exc)
            continue
        rows.append(persons.PersonRow(p.id_number, p.name, p.phone, p.affiliation))
    async with state.uow() as uow:
        valid = [r for r in rows if r is not None]
        done = iter(await persons.register_persons(uow, principal, valid, today=state.today()))
        await uow.commit()
    outcomes = [
        persons.RowOutcome(422, code="validation_error", detail=invalid[i])
        if row is None
        else next(done)
        for i, row in enumerate(rows)
    ]
    results = [
        PersonRowResult(
            row=i,
            status=o.status,
            person=person_view(o.person) if o.person is not None else None,
            code=o.code,
            detail=o.detail,
        )
        for i, o in enumerate(outcomes)
    ]
    return PersonsBatchOut(
        registered=sum(r.status == 201 for r in results),
        existing=sum(r.status == 200 for r in results),
        refused=sum(r.status >= 400 for r in results),
        results=results,
    )


@router.get("/persons")
async def list_persons(
    uow: Uow,
    principal: CurrentPrincipal,
    org_id: Annotated[
        str | None,
        Query(description="the persons of this org and every org under it (default: your own)"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="part of a name, part of a masked ID number (e.g. its last four), or "
            "a whole ID number",
        ),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PersonPage:
    """(city_admin, district/department/unit/agency admins) The persons registered under
    ``org_id`` in the caller's scope, in registration order, with ``total``. Rows carry the
    masked ID number only. An org outside the scope → 404 ``org_not_found``; other roles →
    403 ``role_not_allowed``."""
    scope = await org_scope(uow.session, principal, org_id)
    found = await listing.persons_page(uow.session, scope, q, cursor, limit)
    return PersonPage(
        items=[person_list_item(p, org_name) for p, org_name in found.rows],
        next_cursor=found.next_cursor,
        total=found.total,
    )


def person_list_item(person: Person, org_name: str | None) -> PersonListItem:
    return PersonListItem(
        id=person.id,
        name=person.name,
        id_number_masked=mask_id_number(person.id_number),
        affiliation=Affiliation(kind=person.affiliation_kind, org_id=person.org_id),  # type: ignore[arg-type]
        org_name=org_name,
        created_at=person.created_at.isoformat(),
    )


@router.get("/persons/{person_id}")
async def get_person(person_id: str, uow: Uow, principal: CurrentPrincipal) -> PersonView:
    return person_view(await persons.get_person(uow, principal, person_id))


class TransferIn(BaseModel):
    affiliation: Affiliation


@router.post("/persons/{person_id}/transfer")
async def transfer_person(
    person_id: str, body: TransferIn, uow: Uow, principal: CurrentPrincipal
) -> PersonView:
    """Transfer a person to another unit or agency (调动); their open review tasks follow.
    Into a deactivated org → 422 ``org_inactive``; to the org they are in → 409
    ``same_affiliation``."""
    person = await persons.transfer_person(uow, principal, person_id, body.affiliation)
    view = person_view(person)
    await uow.commit()
    return view


@router.get("/me")
async def me(state: State, uow: Uow, principal: CurrentPrincipal) -> MeView:
    """The signed-in person, their year's summary and whom to ask (``contacts``, 八 咨询方式)."""
    require_role(principal, "personnel")
    person = await persons.my_person(uow, principal)
    year = state.today().year
    summary = await ledger.transcript(uow, person, year)
    return MeView(
        **person_view(person).model_dump(),
        year=year,
        summary=MeSummary(
            required=summary.required,
            credited=summary.credited,
            pending=summary.pending,
            compliant=summary.compliant,
        ),
        contacts=await contacts.contacts_of(uow, person, year),
    )


@router.get("/persons/{person_id}/transcripts/{year}")
async def get_transcript(
    person_id: str,
    year: Annotated[int, Path(ge=2000, le=2100)],
    uow: Uow,
    principal: CurrentPrincipal,
) -> Transcript:
    person = await persons.get_person(uow, principal, person_id)
    return await ledger.transcript(uow, person, year)


# --- evidence -------------------------------------------------------------------------------

MAX_EVIDENCE_BYTES = 10 * 1024 * 1024
# an uploaded file is shown as a document in a unique origin, without script, forms or popups
EVIDENCE_CSP = "sandbox"


def evidence_view(stored: Evidence) -> EvidenceView:
    return EvidenceView(
        id=stored.id,
        sha256=stored.sha256,
        content_type=stored.content_type,
        size=stored.size,
        filename=stored.filename,
        created_at=stored.created_at.isoformat(),
    )


@router.post("/evidence", status_code=201)
async def upload_evidence(
    state: State,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="PDF, JPEG or PNG, at most 10 MiB")],
) -> EvidenceView:
    require_role(principal, "personnel")  # evidence backs one's own claims
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


@router.get("/evidence/{evidence_id}")
async def get_evidence(evidence_id: str, uow: Uow, principal: CurrentPrincipal) -> EvidenceView:
    return evidence_view(await evidence.readable_evidence(uow, principal, evidence_id))


@router.get(
    "/evidence/{evidence_id}/content",
    response_class=Response,
    responses={200: {"content": {t: {} for t in sorted(evidence.ALLOWED_CONTENT_TYPES)}}},
)
async def get_evidence_content(
    evidence_id: str,
    state: State,
    uow: Uow,
    principal: CurrentPrincipal,
    disposition: Annotated[
        Literal["attachment", "inline"],
        Query(description="`inline` for a preview in the page (the console's); else a download"),
    ] = "attachment",
) -> Response:
    """The file itself, for the uploader and the reviewers of a claim that cites it (proxied
    from the store, so the access check above holds for every backend). Always with
    ``Content-Security-Policy: sandbox`` and ``nosniff``: a file someone uploaded never runs
    script in our origin, even when previewed (``?disposition=inline``)."""
    stored = await evidence.readable_evidence(uow, principal, evidence_id)
    store = claims_of(state).evidence_store
    try:
        content = await asyncio.to_thread(store.get, stored.storage_key)
    except evidence.EvidenceNotStored as exc:
        raise NotFound(
            f"the file of evidence {evidence_id} is missing from the store",
            code="evidence_file_missing",
        ) from exc
    return Response(
        content,
        media_type=stored.content_type,
        headers={
            **file_headers(evidence.download_name(stored), disposition),
            "Content-Security-Policy": EVIDENCE_CSP,
            "Cache-Control": "private, no-store",
        },
    )


# --- claims ---------------------------------------------------------------------------------


def claim_view(claim: Claim) -> ClaimView:
    return ClaimView(
        id=claim.id,
        person_id=claim.person_id,
        year=claim.year,
        category=claim.category,
        subject=claim.subject,
        title=claim.title,
        revision=claim.revision,
        status=claim.status,  # type: ignore[arg-type]
        stage=claim.stage,  # type: ignore[arg-type]
        requested_hours=float(claim.requested_hours),
        expected_credits=[CreditView.model_validate(c) for c in claim.expected_credits],
        warnings=claim.warnings,
        credits=[CreditView.model_validate(c) for c in claim.credits],
        rejection_reason=claim.rejection_reason,
        leave_kind=claim.body.get("leave_kind"),
        leave_reason=claim.body.get("leave_reason"),
        start_date=claim.body.get("start_date"),
        end_date=claim.body.get("end_date"),
        months=claim.body.get("months"),
        travel_days=claim.body.get("travel_days"),
        transfer_date=claim.body.get("transfer_date"),
        issuing_authority=claim.body.get("issuing_authority"),
        sync_status=claim.sync_status,  # type: ignore[arg-type]
        evidence_ids=claim.body.get("evidence_ids", []),
        created_at=claim.created_at.isoformat(),
        updated_at=claim.updated_at.isoformat(),
    )


@router.post("/claims", status_code=201, response_model=ClaimView)
async def submit_claim(
    body: ClaimCommand,
    state: State,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Declare hours (学时申报) under a category of 附件1. A rule breach is a 422 problem whose
    ``code`` names the rule (every code: docs/rules.md), among them ``evidence_required``,
    ``duplicate_evidence``, ``evidence_of_another_person`` (a personal certificate or exam card
    another person's claim cites), ``daily_cap_exceeded``, ``yearly_cap_reached`` and
    ``window_closed`` (the declaration window of the year's rule data, with ``closes_at``)."""

    async def create(uow: UnitOfWork) -> dict[str, Any]:
        claim = await service.submit_claim(uow, principal, body, now=state.now())
        return dump(claim_view(claim))

    view = await idempotency.create_once(
        state.uow, principal.sub, idempotency_key, body.stored(), create
    )
    # the view was made by ClaimView (a replay returns the one stored then): sent as it is,
    # not validated and serialised a second and third time
    return Response(pydantic_core.to_json(view), status_code=201, media_type="application/json")


@router.get("/claims/{claim_id}")
async def get_claim(claim_id: str, uow: Uow, principal: CurrentPrincipal) -> ClaimView:
    return claim_view(await service.get_claim(uow, principal, claim_id))


CLAIM_SORTS: dict[str, listing.ClaimSort] = {
    "created_at": "created_at",
    "oldest": "created_at",
    "-created_at": "-created_at",
    "newest": "-created_at",
}


@router.get("/claims")
async def list_claims(
    uow: Uow,
    principal: CurrentPrincipal,
    person_id: str | None = None,
    org_id: Annotated[
        str | None,
        Query(description="without person_id: the claims of every person under this org"),
    ] = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    status: ClaimStatus | None = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    stage: ReviewStage | None = None,
    q: Annotated[
        str | None,
        Query(max_length=100, description="the person: part of a name or masked ID number"),
    ] = None,
    sort: Annotated[
        Literal["created_at", "-created_at", "oldest", "newest"],
        Query(description="created_at / oldest: oldest first (default); -created_at / newest"),
    ] = "created_at",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ClaimPage:
    """Claims with ``total``, the whole filtered list's size. With ``person_id``: that person's
    (the person, or an admin over them). Without: a personnel token gets its own; the city and
    admins every claim of the persons under ``org_id`` (default: their own org; the city: the
    whole city) — 404 ``org_not_found`` outside their scope, 403 ``role_not_allowed`` for the
    other roles."""
    if person_id is not None:
        person = await persons.get_person(uow, principal, person_id)
        who: ColumnElement[bool] | None = Claim.person_id == person.id
    elif principal.role == "personnel":
        who = Claim.person_id == (await persons.my_person(uow, principal)).id
    else:
        who = (await org_scope(uow.session, principal, org_id)).person_condition()
    filters = listing.ClaimFilter(
        year=year,
        status=status.value if status else None,
        category=category,
        stage=stage.value if stage else None,
        q=q,
    )
    found = await listing.claims_page(uow.session, who, filters, CLAIM_SORTS[sort], cursor, limit)
    return ClaimPage(
        items=[claim_list_item(claim, person) for claim, person in found.rows],
        next_cursor=found.next_cursor,
        total=found.total,
    )


def claim_list_item(claim: Claim, person: Person) -> ClaimListItem:
    return ClaimListItem(
        **claim_view(claim).model_dump(),
        person=ClaimPerson(
            id=person.id,
            name=person.name,
            id_number_masked=mask_id_number(person.id_number),
            org_id=person.org_id,
        ),
    )


@router.post("/claims/{claim_id}/withdraw")
async def withdraw_claim(claim_id: str, uow: Uow, principal: CurrentPrincipal) -> ClaimView:
    claim = await service.withdraw_claim(uow, principal, claim_id)
    view = claim_view(claim)
    await uow.commit()
    return view


@router.post("/claims/{claim_id}/revisions", status_code=201)
async def revise_claim(
    claim_id: str, body: ClaimCommand, state: State, uow: Uow, principal: CurrentPrincipal
) -> ClaimView:
    """Revise a rejected claim: checked again like a new claim; after the year's
    ``revisions_close`` (by default the end of the claim window) → 422 ``window_closed``."""
    claim = await service.revise_claim(uow, principal, claim_id, body, now=state.now())
    view = claim_view(claim)
    await uow.commit()
    return view


# --- the compliance report ------------------------------------------------------------------

DEFAULT_PAGE = 500
MAX_PAGE = 1000
ReportFormat = Literal["json", "csv", "xlsx"]
# the year both compliance reports are for
ReportYear = Annotated[int, Query(ge=2000, le=2100)]
# JSON by default; the same report as a CSV or XLSX file with format=csv|xlsx
AS_FILES: dict[int | str, dict[str, Any]] = {
    200: {"content": {exports.CSV_MEDIA_TYPE: {}, exports.XLSX_MEDIA_TYPE: {}}}
}


@router.get(
    "/reports/compliance",
    tags=["reports"],
    response_model=ComplianceReport,
    responses=AS_FILES,
)
async def compliance_report(
    state: State,
    principal: CurrentPrincipal,
    year: ReportYear,
    org_id: str | None = None,
    format: ReportFormat = "json",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    summary: Annotated[
        bool | None,
        Query(
            description="JSON: include the summary of the whole scope (default: on the first "
            "page, the one without a cursor, only; it is one aggregate over the whole scope)"
        ),
    ] = None,
) -> ComplianceReport | Response:
    """Per person totals and gaps of every person in the caller's scope under ``org_id``: JSON
    pages (the ``summary`` of the whole scope on the first page, or on any page with
    ``summary=true``; ``null`` otherwise), or the whole scope as CSV/XLSX."""
    ruleset = rules.load_ruleset(year)
    async with state.uow() as uow:
        scope = await org_scope(uow.session, principal, org_id)
        if format == "json":
            after = decode_cursor(cursor) if cursor else None
            with_summary = summary if summary is not None else cursor is None
            whole = None
            if with_summary:
                whole = await compliance.compliance_summary(uow.session, ruleset, scope)
            rows = await compliance.compliance_chunk(uow.session, ruleset, scope, after, limit + 1)
            next_cursor = None
            if len(rows) > limit:
                rows = rows[:limit]
                next_cursor = encode_cursor(rows[-1].org_id, rows[-1].id)
            head = compliance.report_head(ruleset, scope, state.now())
            # a page of up to 1,000 items is plain data serialised in one go (as many pydantic
            # models would cost more than the SQL); test_response_models holds it to the model
            page_body = {
                **vars(head),
                "org": head.org.model_dump() if head.org else None,
                "required": head.required.model_dump(),
                "summary": whole.model_dump() if whole else None,
                "items": [r.item() for r in rows],
                "next_cursor": next_cursor,
            }
            return Response(pydantic_core.to_json(page_body), media_type="application/json")
    # the files read the scope a chunk at a time, each chunk in its own transaction
    if format == "csv":
        return StreamingResponse(
            exports.csv_stream(state, ruleset, scope),
            media_type=exports.CSV_MEDIA_TYPE,
            headers=exports.attachment(ruleset, scope, "csv"),
        )
    path = await exports.xlsx_file(state, ruleset, scope)
    return FileResponse(
        path,
        media_type=exports.XLSX_MEDIA_TYPE,
        headers=exports.attachment(ruleset, scope, "xlsx"),
        background=BackgroundTask(os.unlink, path),
    )


@router.get(
    "/reports/compliance/by-org",
    tags=["reports"],
    response_model=ComplianceByOrg,
    responses=AS_FILES,
)
async def compliance_by_org(
    state: State,
    principal: CurrentPrincipal,
    year: ReportYear,
    org_id: str | None = None,
    format: ReportFormat = "json",
) -> ComplianceByOrg | Response:
    """(city_admin, admins in their scope) Compliance one row per org under ``org_id`` — the
    city: each district and department; a district or department: each unit and agency; a unit:
    itself — each over its whole subtree: persons, compliant / not, the compliance rate, the
    sum of the hours still missing per subject (``gaps``) and how many persons fall short in
    each (``short``), with a ``total`` row. For the 统计报表 table and chart; CSV/XLSX for
    download. Scope and refusals as ``GET /v1/reports/compliance``."""
    ruleset = rules.load_ruleset(year)
    async with state.uow() as uow:
        scope = await org_scope(uow.session, principal, org_id)
        found = await compliance.compliance_by_org(uow.session, ruleset, scope)
    total = compliance.OrgCompliance.total(found, name="合计")
    if format != "json":
        body, media_type = await exports.by_org_file(format, [*found, total])
        headers = exports.attachment(ruleset, scope, format, report="compliance-by-org")
        return Response(body, media_type=media_type, headers=headers)
    head = compliance.report_head(ruleset, scope, state.now())
    return ComplianceByOrg(
        year=head.year,
        org=head.org,
        required=head.required,
        generated_at=head.generated_at,
        rows=[o.view() for o in found],
        total=total.view(),
    )


# --- title readiness ------------------------------------------------------------------------


def _parse_date(value: str, name: str) -> date:
    """An ISO date in the years rule sets can name (2000-2100): the working-day arithmetic
    from it stays within the calendar."""
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        parsed = None
    if parsed is None or not 2000 <= parsed.year <= 2100:
        raise RuleViolation(
            f"{name} must be a date like 2026-10-09, in 2000-2100 (got {value!r})",
            code="invalid_date",
            field=name,
        )
    return parsed


@router.get("/persons/{person_id}/title-readiness", tags=["reports"])
async def title_readiness(
    person_id: str,
    state: State,
    principal: CurrentPrincipal,
    application_date: str,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> TitleReadiness:
    """Whether the person had completed the year's learning, and submitted the claims for
    converted hours, 5 Chinese working days (per the rule set) before a title application
    submitted on ``application_date``: per subject approved in time, in review but submitted in
    time, too late, and missing (:func:`compliance.title_readiness`).

    ``year`` defaults to the application's year; revoked hours never count."""
    applied_on = _parse_date(application_date, "application_date")
    ruleset = rules.load_ruleset(year if year is not None else applied_on.year)
    async with state.uow() as uow:
        person = await persons.get_person(uow, principal, person_id)
        return await compliance.title_readiness(
            uow.session, person.id, applied_on, ruleset, state.today()
        )


# --- the what-if planner --------------------------------------------------------------------


@router.get("/persons/{person_id}/plan", tags=["reports"])
async def plan(
    person_id: str,
    state: State,
    uow: Uow,
    principal: CurrentPrincipal,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    application_date: str | None = None,
) -> PlanView:
    """What the person still needs in ``year`` (default: this year), the room under each cap,
    the claims that can still fill each gap, days left in the claim window, and, given
    ``application_date``, the title deadline and what must be done by then (see
    :mod:`services.claims.planner`)."""
    today = state.today()
    applied_on = _parse_date(application_date, "application_date") if application_date else None
    ruleset = rules.load_ruleset(year if year is not None else today.year)
    person = await persons.get_person(uow, principal, person_id)
    credited = await ledger.credited_so_far(uow, person.id, ruleset.year)
    pending = await service.pending_claims(uow, person.id, ruleset.year)
    the_plan = planner.make_plan(ruleset, credited, pending, today=today)
    deadline_plan = None
    if applied_on is not None:
        deadline, warnings = workdays.title_deadline(
            applied_on, ruleset.title_application_working_days
        )
        split = await compliance.readiness_split(
            uow.session, person.id, ruleset.year, compliance.cutoff_of(deadline)
        )
        in_time: dict[str, Decimal] = {
            s: split.approved[s] + split.pending[s] for s in compliance.SUBJECTS
        }
        deadline_plan = planner.deadline_view(
            ruleset, applied_on, deadline, today, in_time, warnings
        )
    return planner.plan_view(person.id, ruleset, the_plan, deadline_plan)
