"""Compliance: the one definition of "compliant" and of pending hours, and the read model over
the hours ledger built on it (transcripts, the compliance report, reminders, title readiness all
use this module; nothing here commits).

The rule (DOMAIN.md): a person is compliant in a year when the credited public hours reach the
required public hours *and* the credited professional hours reach the required professional hours,
each subject on its own. Credited = the live (non-revoked) ledger entries of the year, summed and
rounded to the ledger's one decimal (:func:`rules.round_hours`). Pending hours (the
``expected_credits`` of in-review claims) never count.

The SQL form of the rule (:func:`compliant_sql`) says the same for sums the database makes: with
requirements on the one-decimal grid, ``round_half_up(sum, 1) >= required`` holds exactly when
``sum >= required - 0.05``; SQLite sums REALs (29.9 + 0.1 may come back as 29.999…), so the SQL
compares against that half step instead of rounding. A property test checks that the SQL report
and the per-person transcript agree on random ledgers.

How the report is read:

- Persons in scope: :class:`services.claims.scope.OrgScope` (a recursive CTE over the org tree).
- Persons are read in chunks of :data:`CHUNK_SIZE` on the keyset ``(org_id, id)``, each chunk in
  its own short transaction: memory stays flat, and on SQLite (where every transaction takes the
  write lock) writers are never held up for the length of a whole export. A file export is
  therefore not one snapshot: a claim approved mid-export may show up in a later chunk only.
- A chunk is two statements: the page of persons with their org names and credited sums (the
  ledger aggregated over that page only), and the in-review claims of the page.
- The ``summary`` of the whole scope is one SQL aggregate, made once per report (JSON: on the
  first page, or when asked for), not once per page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common import workdays
from libs.common.auth import ADMIN_ROLE_OF_ORG_TYPE
from libs.common.clock import BEIJING
from libs.common.idnumber import mask_id_number
from libs.common.service import ServiceState
from libs.common.timestamps import rfc3339
from services.claims import rules
from services.claims.models import Claim, ClaimStatus, LedgerEntry, OrgReplica, Person
from services.claims.scope import OrgScope
from services.claims.views import (
    CreditedHours,
    OrgComplianceRow,
    OrgRef,
    OrgSummary,
    ReadinessSubject,
    ReportItem,
    ReportSummary,
    Required,
    ShortCounts,
    SubjectHours,
    TitleReadiness,
)

CHUNK_SIZE = 1000
ZERO = Decimal(0)
SUBJECTS: tuple[rules.Subject, ...] = ("public", "professional")
# half the ledger's step (one decimal): see the module docstring
HALF_STEP = Decimal("0.05")


# --- the rule -------------------------------------------------------------------------------


def hours(value: Decimal) -> float:
    return float(rules.round_hours(value))


@dataclass(frozen=True)
class Standing:
    """A person's year against the requirement: credited (live ledger) and pending hours."""

    required: rules.Requirement
    credited_public: Decimal = ZERO
    credited_professional: Decimal = ZERO
    pending_public: Decimal = ZERO
    pending_professional: Decimal = ZERO

    @classmethod
    def of(
        cls,
        required: rules.Requirement,
        credited: Mapping[str, Decimal],
        pending: Mapping[str, Decimal] | None = None,
    ) -> Standing:
        pending = pending or {}
        return cls(
            required=required,
            credited_public=rules.round_hours(credited.get("public", ZERO)),
            credited_professional=rules.round_hours(credited.get("professional", ZERO)),
            pending_public=pending.get("public", ZERO),
            pending_professional=pending.get("professional", ZERO),
        )

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
        """The one definition: each subject's credited hours reach its requirement."""
        return self.gap_public == 0 and self.gap_professional == 0

    def figures(self) -> tuple[float, float, float, float, float, float, float]:
        """credited public, professional, total; pending public, professional; gap public,
        professional, as the views and files show them. Credited hours are rounded already and
        the requirements are on the one-decimal grid, so only the pending sums need rounding."""
        return (
            float(self.credited_public),
            float(self.credited_professional),
            float(self.credited_total),
            hours(self.pending_public) if self.pending_public else 0.0,
            hours(self.pending_professional) if self.pending_professional else 0.0,
            float(self.gap_public),
            float(self.gap_professional),
        )

    def credited_view(self) -> CreditedHours:
        return CreditedHours(
            public=hours(self.credited_public),
            professional=hours(self.credited_professional),
            total=hours(self.credited_total),
        )

    def pending_view(self) -> SubjectHours:
        return SubjectHours(
            public=hours(self.pending_public), professional=hours(self.pending_professional)
        )

    def gaps_view(self) -> SubjectHours:
        return SubjectHours(
            public=hours(self.gap_public), professional=hours(self.gap_professional)
        )


def required_view(requirement: rules.Requirement) -> Required:
    return Required(
        public=float(requirement.public),
        professional=float(requirement.professional),
        total=float(requirement.total),
    )


def compliant_sql(
    public: ColumnElement[Any], professional: ColumnElement[Any], requirement: rules.Requirement
) -> ColumnElement[bool]:
    """:attr:`Standing.compliant` for SQL sums of credited hours (NULL: none credited)."""
    return and_(
        func.coalesce(public, 0) >= literal(float(requirement.public - HALF_STEP)),
        func.coalesce(professional, 0) >= literal(float(requirement.professional - HALF_STEP)),
    )


def add_pending(
    into: dict[tuple[str, str], Decimal], person_id: str, expected: Iterable[Mapping[str, Any]]
) -> None:
    """Add an in-review claim's ``expected_credits`` to the pending sums of its person."""
    for credit in expected:
        key = (person_id, str(credit["subject"]))
        into[key] = into.get(key, ZERO) + Decimal(str(credit["hours"]))


# --- per-person sums ------------------------------------------------------------------------


async def credited_sums(
    session: AsyncSession, person_ids: list[str], year: int, before: datetime | None = None
) -> dict[tuple[str, str], Decimal]:
    """(person, subject) → credited hours of the year on the live ledger (booked before
    ``before`` if given)."""
    stmt = (
        select(LedgerEntry.person_id, LedgerEntry.subject, func.sum(LedgerEntry.hours))
        .where(
            LedgerEntry.person_id.in_(person_ids),
            LedgerEntry.year == year,
            LedgerEntry.revoked_at.is_(None),
        )
        .group_by(LedgerEntry.person_id, LedgerEntry.subject)
    )
    if before is not None:
        stmt = stmt.where(LedgerEntry.created_at < before)
    return {
        (person_id, subject): Decimal(str(total or 0))
        for person_id, subject, total in await session.execute(stmt)
    }


async def pending_sums(
    session: AsyncSession, person_ids: list[str], year: int
) -> dict[tuple[str, str], Decimal]:
    """(person, subject) → hours the in-review claims of the year expect."""
    pending: dict[tuple[str, str], Decimal] = {}
    in_review = await session.execute(
        select(Claim.person_id, Claim.expected_credits).where(
            Claim.person_id.in_(person_ids),
            Claim.year == year,
            Claim.status == ClaimStatus.IN_REVIEW,
        )
    )
    for person_id, expected in in_review:
        add_pending(pending, person_id, expected or [])
    return pending


def by_subject(sums: Mapping[tuple[str, str], Decimal], person_id: str) -> dict[str, Decimal]:
    return {s: sums.get((person_id, s), ZERO) for s in SUBJECTS}


async def standing(
    session: AsyncSession,
    person_id: str,
    ruleset: rules.RuleSet,
    *,
    before: datetime | None = None,
    with_pending: bool = True,
) -> Standing:
    credited = await credited_sums(session, [person_id], ruleset.year, before)
    pending = await pending_sums(session, [person_id], ruleset.year) if with_pending else {}
    return Standing.of(
        ruleset.requirement, by_subject(credited, person_id), by_subject(pending, person_id)
    )


# --- the report: per person -----------------------------------------------------------------


@dataclass(frozen=True)
class PersonCompliance:
    id: str
    name: str
    id_number_masked: str
    org_id: str
    org_name: str | None
    standing: Standing
    # the person's unit is a 职称自主评聘单位 (五(二)); their hours reach the province all the same
    self_appraising: bool = False

    @property
    def compliant(self) -> bool:
        return self.standing.compliant

    def item(self) -> dict[str, Any]:
        """The :class:`ReportItem` as plain data (a page validates all its items in one go)."""
        cp, cf, ct, pp, pf, gp, gf = self.standing.figures()
        return {
            "id": self.id,
            "name": self.name,
            "id_number_masked": self.id_number_masked,
            "org_id": self.org_id,
            "org_name": self.org_name,
            "credited": {"public": cp, "professional": cf, "total": ct},
            "pending": {"public": pp, "professional": pf},
            "gaps": {"public": gp, "professional": gf},
            "compliant": gp == 0 and gf == 0,
            "self_appraising": self.self_appraising,
        }

    def view(self) -> ReportItem:
        return ReportItem.model_validate(self.item())


def _after(cursor: tuple[str, ...] | None) -> ColumnElement[bool] | None:
    if cursor is None:
        return None
    org_id, person_id = cursor
    return tuple_(Person.org_id, Person.id) > tuple_(org_id, person_id)


async def compliance_chunk(
    session: AsyncSession,
    ruleset: rules.RuleSet,
    scope: OrgScope,
    after: tuple[str, ...] | None,
    limit: int,
) -> list[PersonCompliance]:
    """Up to ``limit`` persons of the scope after the keyset ``after``, with their year's totals.

    One statement reads the page of persons with their org's name and their credited sums, a
    second the expected credits of their in-review claims. The sums are correlated subqueries:
    an index lookup of each person's ledger rows of the year, whatever the planner believes
    about the tables (a join let PostgreSQL, without statistics right after a bulk import,
    scan the whole ledger once per person: 90 s instead of 0.6 s for 20,000 people)."""
    rows = (await session.execute(chunk_statement(ruleset, scope, after, limit))).all()
    if not rows:
        return []
    pending = await pending_sums(session, [r.id for r in rows], ruleset.year)
    requirement = ruleset.requirement
    return [
        PersonCompliance(
            id=r.id,
            name=r.name,
            id_number_masked=mask_id_number(r.id_number),
            org_id=r.org_id,
            org_name=r.org_name,
            self_appraising=bool(r.self_appraising),
            standing=Standing.of(
                requirement,
                {"public": _decimal(r.public), "professional": _decimal(r.professional)},
                by_subject(pending, r.id) if pending else None,
            ),
        )
        for r in rows
    ]


def chunk_statement(
    ruleset: rules.RuleSet, scope: OrgScope, after: tuple[str, ...] | None, limit: int
) -> Select[Any]:
    """The page of persons, their org's name and credited sums (see :func:`compliance_chunk`)."""
    page_stmt = scope.where(select(Person.id, Person.name, Person.id_number, Person.org_id))
    condition = _after(after)
    if condition is not None:
        page_stmt = page_stmt.where(condition)
    page = page_stmt.order_by(Person.org_id, Person.id).limit(limit).cte("page")
    return (
        select(
            page.c.id,
            page.c.name,
            page.c.id_number,
            page.c.org_id,
            OrgReplica.name.label("org_name"),
            OrgReplica.self_appraising,
            _credited(page.c.id, ruleset.year, "public"),
            _credited(page.c.id, ruleset.year, "professional"),
        )
        .select_from(page)
        .outerjoin(OrgReplica, OrgReplica.id == page.c.org_id)
        .order_by(page.c.org_id, page.c.id)
    )


def _credited(person_id: ColumnElement[Any], year: int, subject: str) -> Any:
    """The person's credited hours of ``subject`` in ``year`` (NULL: none), as a column."""
    return (
        select(func.sum(LedgerEntry.hours))
        .where(
            LedgerEntry.person_id == person_id,
            LedgerEntry.year == year,
            LedgerEntry.revoked_at.is_(None),
            LedgerEntry.subject == subject,
        )
        .scalar_subquery()
        .label(subject)
    )


def _subject_sum(subject: str) -> Any:
    return func.sum(case((LedgerEntry.subject == subject, LedgerEntry.hours), else_=0)).label(
        subject
    )


def _decimal(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value))


async def iter_compliance(
    state: ServiceState, ruleset: rules.RuleSet, scope: OrgScope, chunk_size: int | None = None
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


# --- the report: the whole scope ------------------------------------------------------------


async def compliance_summary(
    session: AsyncSession, ruleset: rules.RuleSet, scope: OrgScope
) -> ReportSummary:
    """Persons and compliant persons of the whole scope, by org: one SQL aggregate."""
    ledger = select(
        LedgerEntry.person_id.label("person_id"),
        _subject_sum("public"),
        _subject_sum("professional"),
    ).where(LedgerEntry.year == ruleset.year, LedgerEntry.revoked_at.is_(None))
    condition = scope.person_condition()
    if condition is not None:
        ledger = ledger.where(LedgerEntry.person_id.in_(select(Person.id).where(condition)))
    per_person = ledger.group_by(LedgerEntry.person_id).subquery("per_person")
    compliant = case(
        (compliant_sql(per_person.c.public, per_person.c.professional, ruleset.requirement), 1),
        else_=0,
    )
    req = ruleset.requirement
    stmt = (
        select(
            Person.org_id,
            OrgReplica.name,
            OrgReplica.parent_id,
            OrgReplica.self_appraising,
            func.count(Person.id),
            func.sum(compliant),
            func.sum(_gap_sql(per_person.c.public, req.public)),
            func.sum(_gap_sql(per_person.c.professional, req.professional)),
        )
        .select_from(Person)
        .outerjoin(per_person, per_person.c.person_id == Person.id)
        .outerjoin(OrgReplica, OrgReplica.id == Person.org_id)
        .group_by(Person.org_id, OrgReplica.name, OrgReplica.parent_id, OrgReplica.self_appraising)
    )
    if condition is not None:  # the same CTE object: rendered once in the statement
        stmt = stmt.where(condition)
    by_org = []
    for (
        org_id,
        org_name,
        parent_id,
        self_appraising,
        persons,
        n_compliant,
        gap_public,
        gap_professional,
    ) in await session.execute(stmt):
        n_compliant = int(n_compliant or 0)
        by_org.append(
            OrgSummary(
                org_id=org_id,
                org_name=org_name,
                parent_id=parent_id,
                self_appraising=bool(self_appraising),
                persons=int(persons),
                compliant=n_compliant,
                non_compliant=int(persons) - n_compliant,
                gaps=SubjectHours(
                    public=hours(_decimal(gap_public)),
                    professional=hours(_decimal(gap_professional)),
                ),
            )
        )
    by_org.sort(key=lambda o: (o.org_name or "", o.org_id))
    total = sum(o.persons for o in by_org)
    total_compliant = sum(o.compliant for o in by_org)
    return ReportSummary(
        persons=total,
        compliant=total_compliant,
        non_compliant=total - total_compliant,
        by_org=by_org,
    )


@dataclass(frozen=True)
class ReportHead:
    year: int
    org: OrgRef | None
    required: Required
    generated_at: str  # RFC 3339, UTC (libs.common.timestamps)


def report_head(ruleset: rules.RuleSet, scope: OrgScope, now: datetime) -> ReportHead:
    org = scope.org
    return ReportHead(
        year=ruleset.year,
        org=None if org is None else OrgRef(id=org.id, name=org.name, type=org.type),
        required=required_view(ruleset.requirement),
        generated_at=rfc3339(now),
    )


# --- title readiness ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadinessSplit:
    """A person's hours of the year against a title-application deadline (notice 六:
    「应于申报材料前5个工作日完成公需科目和专业科目学习，需要折算学时的，按时完成省平台学时申报」).

    What counts by the deadline is learning *completed* by then and, for hours that need a
    conversion (every claim of 附件1), a claim *submitted* by then:

    - a city-platform record counts by its ``completed_at`` (no declaration is needed);
    - a claim counts when its activity ended by the deadline (its ``end_date``; a claim without
      dates — achievements, aid, leave — by its submission alone) and its current revision was
      submitted by the deadline. The day a reviewer approved it does not matter.

    ``approved``: live credited hours in time; ``pending``: claims in review submitted in time
    (they count once approved); ``too_late``: credited or in-review hours completed or submitted
    after the deadline."""

    approved: dict[str, Decimal]
    pending: dict[str, Decimal]
    too_late: dict[str, Decimal]


def _in_time(cutoff: datetime, completed: datetime | date | None, submitted: datetime) -> bool:
    if isinstance(completed, datetime):
        if completed >= cutoff:
            return False
    elif isinstance(completed, date) and completed >= cutoff.date():
        return False
    return submitted < cutoff


def _end_date(body: Mapping[str, Any] | None) -> date | None:
    value = (body or {}).get("end_date")
    return date.fromisoformat(value) if value else None


def cutoff_of(deadline: date) -> datetime:
    """On or before the deadline (Beijing) = before the next Beijing midnight."""
    return datetime.combine(deadline + timedelta(days=1), time(), tzinfo=BEIJING)


async def readiness_split(
    session: AsyncSession, person_id: str, year: int, cutoff: datetime
) -> ReadinessSplit:
    """Split the person's hours of ``year`` by whether they count for a deadline whose next
    Beijing midnight is ``cutoff``."""
    approved: dict[str, Decimal] = dict.fromkeys(SUBJECTS, ZERO)
    pending: dict[str, Decimal] = dict.fromkeys(SUBJECTS, ZERO)
    late: dict[str, Decimal] = dict.fromkeys(SUBJECTS, ZERO)
    entries = await session.execute(
        select(LedgerEntry, Claim.body, Claim.submitted_at)
        .outerjoin(Claim, (LedgerEntry.source == "claim") & (Claim.id == LedgerEntry.ref))
        .where(
            LedgerEntry.person_id == person_id,
            LedgerEntry.year == year,
            LedgerEntry.revoked_at.is_(None),
        )
    )
    for entry, body, submitted_at in entries:
        if entry.source == "claim":
            # a ledger row without its claim (seeded, or booked before submitted_at existed)
            # counts by the day it was credited
            completed: datetime | date | None = _end_date(body)
            submitted = submitted_at or entry.created_at
        else:
            completed = entry.completed_at or entry.created_at
            submitted = completed
        bucket = approved if _in_time(cutoff, completed, submitted) else late
        bucket[entry.subject] = bucket.get(entry.subject, ZERO) + Decimal(entry.hours)
    in_review = await session.execute(
        select(Claim.body, Claim.submitted_at, Claim.created_at, Claim.expected_credits).where(
            Claim.person_id == person_id,
            Claim.year == year,
            Claim.status == ClaimStatus.IN_REVIEW,
        )
    )
    for body, submitted_at, created_at, expected in in_review:
        on_time = _in_time(cutoff, _end_date(body), submitted_at or created_at)
        bucket = pending if on_time else late
        for credit in expected or []:
            subject = str(credit["subject"])
            bucket[subject] = bucket.get(subject, ZERO) + Decimal(str(credit["hours"]))
    return ReadinessSplit(_rounded(approved), _rounded(pending), _rounded(late))


def _rounded(sums: dict[str, Decimal]) -> dict[str, Decimal]:
    return {s: rules.round_hours(v) for s, v in sums.items()}


async def title_readiness(
    session: AsyncSession,
    person_id: str,
    applied_on: date,
    ruleset: rules.RuleSet,
    today: date,
) -> TitleReadiness:
    """Whether the person had the year's learning completed (and conversions declared) 5
    Chinese working days (per the rule set) before a title application on ``applied_on``:
    see :class:`ReadinessSplit` for what counts."""
    working_days = ruleset.title_application_working_days
    deadline, warnings = workdays.title_deadline(applied_on, working_days)
    cutoff = cutoff_of(deadline)
    now = await standing(session, person_id, ruleset, with_pending=False)
    split = await readiness_split(session, person_id, ruleset.year, cutoff)
    by_deadline = Standing.of(ruleset.requirement, split.approved, split.pending)
    if_approved = Standing.of(
        ruleset.requirement, {s: split.approved[s] + split.pending[s] for s in SUBJECTS}
    )
    if deadline >= today:
        warnings.append(
            f"The deadline {deadline.isoformat()} has not passed yet: credited_by_deadline "
            "shows what is in time so far; learning completed and claims submitted up to the "
            "deadline still count."
        )
    if deadline.year < ruleset.year:
        warnings.append(
            f"The deadline {deadline.isoformat()} falls before the rule year {ruleset.year} "
            "begins, so no hours of that year can have been completed by then."
        )
    req = ruleset.requirement
    subjects: dict[str, ReadinessSubject] = {
        s: ReadinessSubject(
            required=float(req.for_subject(s)),
            approved=hours(split.approved[s]),
            pending_in_time=hours(split.pending[s]),
            too_late=hours(split.too_late[s]),
            missing=hours(max(req.for_subject(s) - split.approved[s], ZERO)),
            missing_if_pending_approved=hours(
                max(req.for_subject(s) - split.approved[s] - split.pending[s], ZERO)
            ),
        )
        for s in SUBJECTS
    }
    return TitleReadiness(
        person_id=person_id,
        year=ruleset.year,
        application_date=applied_on.isoformat(),
        deadline=deadline.isoformat(),
        working_days=working_days,
        required=SubjectHours(public=float(req.public), professional=float(req.professional)),
        compliant_now=now.compliant,
        compliant_by_deadline=by_deadline.compliant,
        compliant_if_pending_approved=if_approved.compliant,
        credited_now=_credited_only(now),
        credited_by_deadline=_credited_only(by_deadline),
        subjects=subjects,
        warnings=warnings,
    )


def _credited_only(s: Standing) -> SubjectHours:
    return SubjectHours(
        public=float(s.credited_public), professional=float(s.credited_professional)
    )


# --- the report by org (the console's table and chart) ---------------------------------------


@dataclass(frozen=True)
class OrgCompliance:
    """One org of the by-org report: its persons (its own and every org's under it), how many
    are compliant, the sum of their gaps and how many fall short, per subject. The total row
    (:meth:`total`) has no org."""

    org_id: str | None
    code: str | None
    name: str
    type: str | None
    persons: int
    compliant: int
    gap_public: Decimal
    gap_professional: Decimal
    short_public: int
    short_professional: int
    self_appraising: bool = False

    @classmethod
    def total(cls, rows: Iterable[OrgCompliance], name: str) -> OrgCompliance:
        rows = list(rows)
        return cls(
            org_id=None,
            code=None,
            name=name,
            type=None,
            persons=sum(r.persons for r in rows),
            compliant=sum(r.compliant for r in rows),
            gap_public=sum((r.gap_public for r in rows), ZERO),
            gap_professional=sum((r.gap_professional for r in rows), ZERO),
            short_public=sum(r.short_public for r in rows),
            short_professional=sum(r.short_professional for r in rows),
        )

    def view(self) -> OrgComplianceRow:
        return OrgComplianceRow(
            org_id=self.org_id,
            code=self.code,
            name=self.name,
            type=self.type,
            persons=self.persons,
            compliant=self.compliant,
            non_compliant=self.persons - self.compliant,
            compliance_rate=round(self.compliant / self.persons, 4) if self.persons else None,
            gaps=SubjectHours(
                public=hours(self.gap_public), professional=hours(self.gap_professional)
            ),
            short=ShortCounts(public=self.short_public, professional=self.short_professional),
            self_appraising=self.self_appraising,
        )


def _gap_sql(credited: ColumnElement[Any], required: Decimal) -> ColumnElement[Any]:
    """A person's gap in one subject: required − credited, 0 once reached (as
    :func:`compliant_sql` decides "reached")."""
    have = func.coalesce(credited, 0)
    return case((have >= literal(float(required - HALF_STEP)), 0), else_=float(required) - have)


# the org types over staff (their reviewers' kinds): the rows a report by org can have
STAFF_TREE_TYPES = tuple(ADMIN_ROLE_OF_ORG_TYPE)


async def compliance_by_org(
    session: AsyncSession, ruleset: rules.RuleSet, scope: OrgScope
) -> list[OrgCompliance]:
    """The scope's report one row per org directly under its org (the city: its districts and
    departments; a district: its units and agencies), each row over that org's whole subtree;
    a unit or agency (nothing under it) is its own one row. Two statements: the orgs of the
    rows, and one aggregate of the ledger over every person of the scope."""
    root = scope.root
    if root is None:  # the city: its districts and departments (and any orphan top org)
        cities = select(OrgReplica.id).where(OrgReplica.type == "city")
        heads = select(OrgReplica).where(
            or_(
                OrgReplica.parent_id.in_(cities),
                and_(OrgReplica.parent_id.is_(None), OrgReplica.type != "city"),
            ),
            # the orgs whose subtree holds staff: not a CE base or the exam centre
            OrgReplica.type.in_(STAFF_TREE_TYPES),
        )
    else:
        heads = select(OrgReplica).where(or_(OrgReplica.parent_id == root, OrgReplica.id == root))
    orgs = list((await session.scalars(heads.order_by(OrgReplica.code))).all())
    if root is not None and len(orgs) > 1:  # the org itself is a row only when nothing is under it
        orgs = [o for o in orgs if o.id != root]
    if not orgs:
        return []
    seed = select(OrgReplica.id.label("id"), OrgReplica.id.label("head")).where(
        OrgReplica.id.in_([o.id for o in orgs])
    )
    tree = seed.cte("heads", recursive=True)
    # UNION (not UNION ALL): a cyclic replica still terminates
    tree = tree.union(select(OrgReplica.id, tree.c.head).where(OrgReplica.parent_id == tree.c.id))
    ledger = (
        select(
            LedgerEntry.person_id.label("person_id"),
            _subject_sum("public"),
            _subject_sum("professional"),
        )
        .where(
            LedgerEntry.year == ruleset.year,
            LedgerEntry.revoked_at.is_(None),
            LedgerEntry.person_id.in_(select(Person.id).join(tree, tree.c.id == Person.org_id)),
        )
        .group_by(LedgerEntry.person_id)
        .subquery("per_person")
    )
    req = ruleset.requirement
    gap_public = _gap_sql(ledger.c.public, req.public)
    gap_professional = _gap_sql(ledger.c.professional, req.professional)
    compliant = compliant_sql(ledger.c.public, ledger.c.professional, req)
    stmt = (
        select(
            tree.c.head,
            func.count(Person.id),
            func.sum(case((compliant, 1), else_=0)),
            func.sum(gap_public),
            func.sum(gap_professional),
            func.sum(case((gap_public > 0, 1), else_=0)),
            func.sum(case((gap_professional > 0, 1), else_=0)),
        )
        .select_from(Person)
        .join(tree, tree.c.id == Person.org_id)
        .outerjoin(ledger, ledger.c.person_id == Person.id)
        .group_by(tree.c.head)
    )
    sums = {row[0]: row[1:] for row in (await session.execute(stmt)).all()}
    rows = []
    for org in orgs:
        persons, n_compliant, gp, gf, sp, sf = sums.get(org.id, (0, 0, 0, 0, 0, 0))
        rows.append(
            OrgCompliance(
                org_id=org.id,
                code=org.code,
                name=org.name,
                type=org.type,
                persons=int(persons or 0),
                compliant=int(n_compliant or 0),
                gap_public=rules.round_hours(_decimal(gp)),
                gap_professional=rules.round_hours(_decimal(gf)),
                short_public=int(sp or 0),
                short_professional=int(sf or 0),
                self_appraising=bool(org.self_appraising),
            )
        )
    return rows
