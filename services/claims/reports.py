"""Compliance views over the hours ledger (API.md, claims): the compliance report of an org
(JSON, CSV, XLSX) and a person's title-application readiness. Read-only: nothing here commits.

How the report is computed:

- Persons in scope: a unit or agency → its persons; a district or department → the persons of
  every org under it (a recursive CTE over ``org_replica``); the city org, or no ``org_id`` for
  ``city_admin``/``system`` → everybody.
- Credited hours are SQL sums over the live (non-revoked) ledger of the year; pending hours are
  the ``expected_credits`` of in-review claims (JSON, summed in Python per chunk).
- Persons are read in chunks of :data:`CHUNK_SIZE` on the keyset ``(org_id, id)``, each chunk in
  its own short transaction: memory stays flat, and on SQLite (where every transaction takes the
  write lock) writers are never held up for the length of a whole export. A file export is
  therefore not one snapshot: a claim approved mid-export may show up in a later chunk only.
- Compliance is what the transcript says: credited public ≥ required public *and* credited
  professional ≥ required professional (DOMAIN.md); pending hours never count.

Output: JSON is paginated (``limit`` ≤ :data:`MAX_PAGE`, ``next_cursor``) with the ``summary`` of
the whole scope on every page (one SQL aggregate); CSV (UTF-8 with BOM, so Excel reads Chinese)
and XLSX (write-only workbook in a temp file: a ``compliance`` sheet and a ``summary`` sheet)
hold the whole scope. Rows are ordered by org id, then person id.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from openpyxl import Workbook
from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from libs.common import workdays
from libs.common.auth import CurrentPrincipal, Principal, require_role
from libs.common.clock import BEIJING
from libs.common.errors import NotFound, RuleViolation
from libs.common.idnumber import mask_id_number
from libs.common.pagination import decode_cursor, encode_cursor
from libs.common.service import ServiceState, state_of
from libs.common.tabular import csv_safe, xlsx_text_cells
from services.claims import rules
from services.claims.models import Claim, LedgerEntry, OrgReplica, Person
from services.claims.persons import get_person

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])
router = APIRouter(prefix="/v1", tags=["reports"])

CHUNK_SIZE = 1000
DEFAULT_PAGE = 500
MAX_PAGE = 1000
ZERO = Decimal(0)
# Hours have one decimal; SQLite sums REALs, so 29.9 + 0.1 may come back as 29.999…: any sum
# that is really short of a requirement is short by at least 0.1, hence the half-step tolerance.
TOLERANCE = 0.05

REPORT_ROLES = (
    "city_admin",
    "system",
    "district_admin",
    "department_admin",
    "unit_admin",
    "agency_admin",
)
OWN_ORG_ROLES = {"unit_admin", "agency_admin"}

COLUMNS = (
    "person_id",
    "name",
    "id_number_masked",
    "org_id",
    "org_name",
    "credited_public",
    "credited_professional",
    "credited_total",
    "pending_public",
    "pending_professional",
    "gap_public",
    "gap_professional",
    "compliant",
)


# --- scope ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whose persons a report covers: ``root`` and every org under it, or (``root`` None) the
    whole city. ``org`` is the org the report is about (None: the city without an org)."""

    org: OrgReplica | None
    root: str | None

    def person_condition(self) -> ColumnElement[bool] | None:
        if self.root is None:
            return None
        tree = (
            select(OrgReplica.id).where(OrgReplica.id == self.root).cte("subtree", recursive=True)
        )
        # UNION (not UNION ALL) drops repeats, so even a cyclic replica terminates
        tree = tree.union(select(OrgReplica.id).where(OrgReplica.parent_id == tree.c.id))
        return Person.org_id.in_(select(tree.c.id))

    def where(self, stmt: SelectT) -> SelectT:
        condition = self.person_condition()
        return stmt if condition is None else stmt.where(condition)


CITY = Scope(org=None, root=None)


async def _ancestors(session: AsyncSession, org_id: str) -> list[str]:
    chain: list[str] = []
    current: str | None = org_id
    while current is not None and current not in chain:
        chain.append(current)
        org = await session.get(OrgReplica, current)
        current = org.parent_id if org else None
    return chain


async def resolve_scope(session: AsyncSession, principal: Principal, org_id: str | None) -> Scope:
    """The scope of a report on ``org_id`` for this caller.

    City roles see any org (no org: the city); district and department admins their subtree;
    unit and agency admins their own org. Other roles → 403 ``role_not_allowed``; an org that
    is unknown or outside the caller's scope → 404 ``org_not_found`` (existence is not leaked)."""
    require_role(principal, *REPORT_ROLES)
    if principal.is_city and org_id is None:
        return CITY
    target = org_id or principal.org_id or ""
    org = await session.get(OrgReplica, target)
    if principal.is_city:
        allowed = True
    elif principal.role in OWN_ORG_ROLES:
        allowed = target == principal.org_id
    else:
        allowed = principal.org_id in await _ancestors(session, target)
    if org is None or not allowed:
        raise NotFound(f"org {target} not found in your scope", code="org_not_found")
    if org.type == "city":
        return Scope(org=org, root=None)
    return Scope(org=org, root=org.id)


# --- per-person compliance --------------------------------------------------------------------


def _hours(value: Decimal) -> float:
    return float(rules.round_hours(value))


@dataclass(frozen=True)
class PersonCompliance:
    id: str
    name: str
    id_number_masked: str
    org_id: str
    org_name: str | None
    credited_public: Decimal
    credited_professional: Decimal
    pending_public: Decimal
    pending_professional: Decimal
    required: rules.Requirement

    @property
    def credited_total(self) -> Decimal:
        return self.credited_public + self.credited_professional

    @property
    def gap_public(self) -> Decimal:
        return max(self.required.public - self.credited_public, ZERO)

    @property
    def gap_professional(self) -> Decimal:
        return max(self.required.professional - self.credited_professional, ZERO)

    @property
    def compliant(self) -> bool:
        return self.gap_public == 0 and self.gap_professional == 0

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "id_number_masked": self.id_number_masked,
            "org_id": self.org_id,
            "org_name": self.org_name,
            "credited": {
                "public": _hours(self.credited_public),
                "professional": _hours(self.credited_professional),
                "total": _hours(self.credited_total),
            },
            "pending": {
                "public": _hours(self.pending_public),
                "professional": _hours(self.pending_professional),
            },
            "gaps": {
                "public": _hours(self.gap_public),
                "professional": _hours(self.gap_professional),
            },
            "compliant": self.compliant,
        }

    def row(self) -> list[Any]:
        """The values of :data:`COLUMNS`."""
        return [
            self.id,
            self.name,
            self.id_number_masked,
            self.org_id,
            self.org_name or "",
            _hours(self.credited_public),
            _hours(self.credited_professional),
            _hours(self.credited_total),
            _hours(self.pending_public),
            _hours(self.pending_professional),
            _hours(self.gap_public),
            _hours(self.gap_professional),
            self.compliant,
        ]


def _after(cursor: tuple[str, ...] | None) -> ColumnElement[bool] | None:
    if cursor is None:
        return None
    org_id, person_id = cursor
    return or_(Person.org_id > org_id, and_(Person.org_id == org_id, Person.id > person_id))


async def compliance_chunk(
    session: AsyncSession,
    ruleset: rules.RuleSet,
    scope: Scope,
    after: tuple[str, ...] | None,
    limit: int,
) -> list[PersonCompliance]:
    """Up to ``limit`` persons of the scope after the keyset ``after``, with their year's totals."""
    stmt = scope.where(select(Person.id, Person.name, Person.id_number, Person.org_id))
    condition = _after(after)
    if condition is not None:
        stmt = stmt.where(condition)
    persons = (await session.execute(stmt.order_by(Person.org_id, Person.id).limit(limit))).all()
    if not persons:
        return []
    ids = [p.id for p in persons]
    credited: dict[tuple[str, str], Decimal] = {}
    sums = await session.execute(
        select(LedgerEntry.person_id, LedgerEntry.subject, func.sum(LedgerEntry.hours))
        .where(
            LedgerEntry.person_id.in_(ids),
            LedgerEntry.year == ruleset.year,
            LedgerEntry.revoked_at.is_(None),
        )
        .group_by(LedgerEntry.person_id, LedgerEntry.subject)
    )
    for person_id, subject, total in sums:
        credited[(person_id, subject)] = rules.round_hours(Decimal(str(total or 0)))
    pending: dict[tuple[str, str], Decimal] = {}
    in_review = await session.execute(
        select(Claim.person_id, Claim.expected_credits).where(
            Claim.person_id.in_(ids), Claim.year == ruleset.year, Claim.status == "in_review"
        )
    )
    for person_id, expected in in_review:
        for credit in expected or []:
            key = (person_id, str(credit["subject"]))
            pending[key] = pending.get(key, ZERO) + Decimal(str(credit["hours"]))
    org_ids = {p.org_id for p in persons}
    names_of_orgs = await session.execute(
        select(OrgReplica.id, OrgReplica.name).where(OrgReplica.id.in_(org_ids))
    )
    names = {org_id: name for org_id, name in names_of_orgs}
    return [
        PersonCompliance(
            id=p.id,
            name=p.name,
            id_number_masked=mask_id_number(p.id_number),
            org_id=p.org_id,
            org_name=names.get(p.org_id),
            credited_public=credited.get((p.id, "public"), ZERO),
            credited_professional=credited.get((p.id, "professional"), ZERO),
            pending_public=pending.get((p.id, "public"), ZERO),
            pending_professional=pending.get((p.id, "professional"), ZERO),
            required=ruleset.requirement,
        )
        for p in persons
    ]


async def iter_compliance(
    state: ServiceState, ruleset: rules.RuleSet, scope: Scope, chunk_size: int | None = None
) -> AsyncIterator[list[PersonCompliance]]:
    """Every person of the scope, a chunk at a time, each chunk in its own transaction."""
    chunk_size = chunk_size or CHUNK_SIZE
    after: tuple[str, ...] | None = None
    while True:
        async with state.uow() as uow:
            chunk = await compliance_chunk(uow.session, ruleset, scope, after, chunk_size)
        if not chunk:
            return
        yield chunk
        if len(chunk) < chunk_size:
            return
        after = (chunk[-1].org_id, chunk[-1].id)


async def compliance_summary(
    session: AsyncSession, ruleset: rules.RuleSet, scope: Scope
) -> dict[str, Any]:
    """Persons and compliant persons of the whole scope, by org: one SQL aggregate."""
    req = ruleset.requirement
    ledger = select(
        LedgerEntry.person_id.label("person_id"),
        func.sum(case((LedgerEntry.subject == "public", LedgerEntry.hours), else_=0)).label(
            "public"
        ),
        func.sum(case((LedgerEntry.subject == "professional", LedgerEntry.hours), else_=0)).label(
            "professional"
        ),
    ).where(LedgerEntry.year == ruleset.year, LedgerEntry.revoked_at.is_(None))
    condition = scope.person_condition()
    if condition is not None:
        ledger = ledger.where(LedgerEntry.person_id.in_(select(Person.id).where(condition)))
    per_person = ledger.group_by(LedgerEntry.person_id).subquery("per_person")
    compliant = case(
        (
            and_(
                func.coalesce(per_person.c.public, 0) >= literal(float(req.public) - TOLERANCE),
                func.coalesce(per_person.c.professional, 0)
                >= literal(float(req.professional) - TOLERANCE),
            ),
            1,
        ),
        else_=0,
    )
    stmt = (
        select(Person.org_id, OrgReplica.name, func.count(Person.id), func.sum(compliant))
        .select_from(Person)
        .outerjoin(per_person, per_person.c.person_id == Person.id)
        .outerjoin(OrgReplica, OrgReplica.id == Person.org_id)
        .group_by(Person.org_id, OrgReplica.name)
    )
    if condition is not None:  # the same CTE object: rendered once in the statement
        stmt = stmt.where(condition)
    by_org = []
    for org_id, org_name, persons, n_compliant in await session.execute(stmt):
        n_compliant = int(n_compliant or 0)
        by_org.append(
            {
                "org_id": org_id,
                "org_name": org_name,
                "persons": int(persons),
                "compliant": n_compliant,
                "non_compliant": int(persons) - n_compliant,
            }
        )
    by_org.sort(key=lambda o: (o["org_name"] or "", o["org_id"]))
    total = sum(o["persons"] for o in by_org)
    total_compliant = sum(o["compliant"] for o in by_org)
    return {
        "persons": total,
        "compliant": total_compliant,
        "non_compliant": total - total_compliant,
        "by_org": by_org,
    }


# --- the report endpoint --------------------------------------------------------------------


def _report_head(ruleset: rules.RuleSet, scope: Scope, now: datetime) -> dict[str, Any]:
    req = ruleset.requirement
    org = scope.org
    return {
        "year": ruleset.year,
        "org": None if org is None else {"id": org.id, "name": org.name, "type": org.type},
        "required": {
            "public": float(req.public),
            "professional": float(req.professional),
            "total": float(req.total),
        },
        "generated_at": now.astimezone(UTC).isoformat(),
    }


@router.get("/reports/compliance")
async def compliance_report(
    request: Request,
    principal: CurrentPrincipal,
    year: Annotated[int, Query(ge=2000, le=2100)],
    org_id: str | None = None,
    format: Literal["json", "csv", "xlsx"] = "json",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Any:
    state = state_of(request)
    ruleset = rules.load_ruleset(year)
    async with state.uow() as uow:
        scope = await resolve_scope(uow.session, principal, org_id)
        if format == "json":
            after = decode_cursor(cursor) if cursor else None
            return await _json_page(uow.session, ruleset, scope, after, limit, state.now())
    if format == "csv":
        return StreamingResponse(
            _csv_stream(state, ruleset, scope),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": _attachment(ruleset, scope, "csv")},
        )
    path = await _xlsx_file(state, ruleset, scope)
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": _attachment(ruleset, scope, "xlsx")},
        background=BackgroundTask(os.unlink, path),
    )


async def _json_page(
    session: AsyncSession,
    ruleset: rules.RuleSet,
    scope: Scope,
    after: tuple[str, ...] | None,
    limit: int,
    now: datetime,
) -> dict[str, Any]:
    summary = await compliance_summary(session, ruleset, scope)
    rows = await compliance_chunk(session, ruleset, scope, after, limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].org_id, rows[-1].id)
    return {
        **_report_head(ruleset, scope, now),
        "summary": summary,
        "items": [r.view() for r in rows],
        "next_cursor": next_cursor,
    }


def _attachment(ruleset: rules.RuleSet, scope: Scope, ext: str) -> str:
    which = scope.org.id if scope.org is not None else "city"
    return f'attachment; filename="compliance-{ruleset.year}-{which}.{ext}"'


async def _csv_stream(
    state: ServiceState, ruleset: rules.RuleSet, scope: Scope
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    async for chunk in iter_compliance(state, ruleset, scope):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([csv_safe(v) for v in person.row()] for person in chunk)
        yield buffer.getvalue().encode("utf-8")


async def _xlsx_file(state: ServiceState, ruleset: rules.RuleSet, scope: Scope) -> str:
    """The report as an .xlsx temp file (the caller deletes it). Rows go to openpyxl's own temp
    files as they come, so memory stays flat; the zip is written in a thread."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("compliance")
    sheet.append(COLUMNS)
    async for chunk in iter_compliance(state, ruleset, scope):
        for person in chunk:
            sheet.append(xlsx_text_cells(sheet, person.row()))
    async with state.uow() as uow:
        summary = await compliance_summary(uow.session, ruleset, scope)
    head = _report_head(ruleset, scope, state.now())
    info = workbook.create_sheet("summary")
    org = head["org"]
    info.append(["year", ruleset.year])
    info.append(xlsx_text_cells(info, ["org_id", org["id"] if org else ""]))
    info.append(xlsx_text_cells(info, ["org_name", org["name"] if org else "(city)"]))
    info.append(["required_public", head["required"]["public"]])
    info.append(["required_professional", head["required"]["professional"]])
    info.append(["generated_at", head["generated_at"]])
    info.append(["persons", summary["persons"]])
    info.append(["compliant", summary["compliant"]])
    info.append(["non_compliant", summary["non_compliant"]])
    info.append([])
    info.append(["org_id", "org_name", "persons", "compliant", "non_compliant"])
    for row in summary["by_org"]:
        values = [row["org_id"], row["org_name"] or "", row["persons"], row["compliant"]]
        info.append(xlsx_text_cells(info, [*values, row["non_compliant"]]))
    fd, path = tempfile.mkstemp(prefix="compliance-", suffix=".xlsx")
    os.close(fd)
    try:
        await asyncio.to_thread(workbook.save, path)
    except BaseException:
        os.unlink(path)
        raise
    return path


# --- title readiness ------------------------------------------------------------------------


def _parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise RuleViolation(
            f"{name} must be a date like 2026-10-09 (got {value!r})",
            code="invalid_date",
            field=name,
        ) from None


async def _credited(
    session: AsyncSession, person_id: str, year: int, before: datetime | None = None
) -> dict[str, Decimal]:
    stmt = (
        select(LedgerEntry.subject, func.sum(LedgerEntry.hours))
        .where(
            LedgerEntry.person_id == person_id,
            LedgerEntry.year == year,
            LedgerEntry.revoked_at.is_(None),
        )
        .group_by(LedgerEntry.subject)
    )
    if before is not None:
        stmt = stmt.where(LedgerEntry.created_at < before)
    totals = {"public": ZERO, "professional": ZERO}
    for subject, total in await session.execute(stmt):
        totals[subject] = rules.round_hours(Decimal(str(total or 0)))
    return totals


def _meets(requirement: rules.Requirement, credited: dict[str, Decimal]) -> bool:
    return (
        credited["public"] >= requirement.public
        and credited["professional"] >= requirement.professional
    )


@router.get("/persons/{person_id}/title-readiness")
async def title_readiness(
    person_id: str,
    request: Request,
    principal: CurrentPrincipal,
    application_date: str,
    year: int | None = None,
) -> Any:
    """Whether the person had the year's hours credited 5 Chinese working days (per the rule
    set) before a title application submitted on ``application_date``.

    ``year`` defaults to the application's year. Hours count by the Beijing date they were
    credited on our ledger (``created_at``), revoked ones not at all."""
    state = state_of(request)
    applied_on = _parse_date(application_date, "application_date")
    ruleset = rules.load_ruleset(year if year is not None else applied_on.year)
    working_days = ruleset.title_application_working_days
    deadline, warnings = workdays.title_deadline(applied_on, working_days)
    # credited on or before the deadline (Beijing) = created before the next Beijing midnight
    cutoff = datetime.combine(deadline + timedelta(days=1), time(), tzinfo=BEIJING)
    async with state.uow() as uow:
        person = await get_person(uow, principal, person_id)
        credited_now = await _credited(uow.session, person.id, ruleset.year)
        by_deadline = await _credited(uow.session, person.id, ruleset.year, before=cutoff)
    today = state.today()
    if deadline >= today:
        warnings.append(
            f"The deadline {deadline.isoformat()} has not passed yet: credited_by_deadline "
            "shows what is credited so far; hours credited up to the deadline still count."
        )
    if deadline.year < ruleset.year:
        warnings.append(
            f"The deadline {deadline.isoformat()} falls before the rule year {ruleset.year} "
            "begins, so no hours of that year can have been credited by then."
        )
    req = ruleset.requirement
    return {
        "person_id": person.id,
        "year": ruleset.year,
        "application_date": applied_on.isoformat(),
        "deadline": deadline.isoformat(),
        "working_days": working_days,
        "required": {"public": float(req.public), "professional": float(req.professional)},
        "compliant_now": _meets(req, credited_now),
        "compliant_by_deadline": _meets(req, by_deadline),
        "credited_now": {s: float(h) for s, h in credited_now.items()},
        "credited_by_deadline": {s: float(h) for s, h in by_deadline.items()},
        "warnings": warnings,
    }
