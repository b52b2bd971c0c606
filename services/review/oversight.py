"""What reviewers and authorities look at: filtered task lists, the queues of every org under an
authority (open tasks by stage, age in Chinese working days, overdue against the SLA), and the
export of an authority's decisions for its files.

Age of a task = the working days after the day it arrived (Beijing) up to today: a task that came in
on Friday is 1 working day old on Monday (``libs.common.workdays``). A task is overdue when its age
exceeds the SLA (``CE_REVIEW_SLA_WORKING_DAYS``, default 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query
from sqlalchemy import ColumnElement, case, func, or_, select

from libs.common.auth import Principal
from libs.common.clock import BEIJING
from libs.common.errors import NotFound, RuleViolation
from libs.common.uow import UnitOfWork
from libs.common.workdays import working_days_after, working_days_before
from services.review.models import HistoryEntry, Org, ReviewTask
from services.review.routing import AUTHORITY_TYPES

DEFAULT_SLA_WORKING_DAYS = 10
MASKED_ID_CHARS = set("0123456789*Xx")


def beijing_midnight(day: date) -> datetime:
    """The UTC instant a Beijing calendar day starts."""
    return datetime.combine(day, time(0), tzinfo=BEIJING).astimezone(UTC)


def arrived_by(today: date, age: int) -> datetime:
    """Tasks created before this instant are at least ``age`` working days old on ``today``."""
    return beijing_midnight(working_days_before(today, age) + timedelta(days=1))


@dataclass(frozen=True)
class TaskQuery:
    """Filters of ``GET /v1/review-tasks`` beyond status and stage (query parameters)."""

    category: str | None = None
    # a name or part of one, or a masked ID number or its end (e.g. ``0012``)
    person: Annotated[str | None, Query(max_length=100)] = None
    q: Annotated[
        str | None,
        Query(max_length=100, description="the search box: as ``person`` (name or masked ID)"),
    ] = None
    verified_evidence: bool | None = None
    # only tasks open at least this many Chinese working days
    min_age: Annotated[int | None, Query(ge=0, le=500)] = None
    org_id: str | None = None  # ``unrouted``: the city's queue of tasks with no valid route

    def clauses(self, today: date) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.org_id:
            where.append(ReviewTask.org_id == self.org_id)
        if self.category:
            where.append(ReviewTask.category == self.category)
        for needle in (self.person, self.q):
            if needle and needle.strip():
                where.append(person_matches(needle.strip()))
        if self.verified_evidence is not None:
            where.append(ReviewTask.verified_evidence.is_(self.verified_evidence))
        if self.min_age:
            where.append(ReviewTask.created_at < arrived_by(today, self.min_age))
        return where


def person_matches(needle: str) -> ColumnElement[bool]:
    """A masked ID number (or its end) when the text could be one, a part of the name otherwise."""
    if set(needle) <= MASKED_ID_CHARS:
        return or_(
            ReviewTask.id_number_masked == needle.upper(),
            ReviewTask.id_number_masked.endswith(needle.upper(), autoescape=True),
        )
    return ReviewTask.person_name.contains(needle, autoescape=True)


# --- queues ---------------------------------------------------------------------------------


async def authority_in_scope(uow: UnitOfWork, principal: Principal, org_id: str) -> Org:
    """The org whose queues (or decisions) the caller asks for: the city sees any; a district or
    department admin only its own. Anything else is 404 (outside scope is not told apart)."""
    org = await uow.session.get(Org, org_id)
    allowed = org is not None and (
        principal.is_city
        or (
            principal.org_id == org.id
            and org.type in AUTHORITY_TYPES
            and principal.role == f"{org.type}_admin"
        )
    )
    if org is None or not allowed:
        raise NotFound(f"org {org_id} not found in your scope", code="org_not_found")
    return org


async def queues(uow: UnitOfWork, authority: Org, *, today: date, sla: int) -> dict[str, Any]:
    if sla < 1:
        raise RuleViolation("the SLA is at least 1 working day", code="invalid_sla")
    children = (
        await uow.session.scalars(
            select(Org).where(Org.parent_id == authority.id).order_by(Org.code)
        )
    ).all()
    orgs = [authority, *children]
    overdue_before = arrived_by(today, sla + 1)
    rows = (
        await uow.session.execute(
            select(
                ReviewTask.org_id,
                ReviewTask.stage,
                func.count(),
                func.min(ReviewTask.created_at),
                func.sum(case((ReviewTask.created_at < overdue_before, 1), else_=0)),
            )
            .where(ReviewTask.status == "open", ReviewTask.org_id.in_([o.id for o in orgs]))
            .group_by(ReviewTask.org_id, ReviewTask.stage)
        )
    ).all()
    stats: dict[str, dict[str, Any]] = {
        o.id: {"open": {"unit": 0, "authority": 0}, "oldest": None, "overdue": 0} for o in orgs
    }
    for org_id, stage, count, oldest, overdue in rows:
        entry = stats[org_id]
        entry["open"][stage] = int(count)
        entry["overdue"] += int(overdue or 0)
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            if entry["oldest"] is None or oldest < entry["oldest"]:
                entry["oldest"] = oldest
    items = []
    for org in orgs:
        entry = stats[org.id]
        oldest = entry["oldest"]
        items.append(
            {
                "org_id": org.id,
                "code": org.code,
                "name": org.name,
                "type": org.type,
                "active": org.active,
                "open": entry["open"],
                "oldest_age_working_days": (
                    working_days_after(oldest.astimezone(BEIJING).date(), today)
                    if oldest is not None
                    else None
                ),
                "overdue": entry["overdue"],
            }
        )
    return {
        "org_id": authority.id,
        "as_of": today.isoformat(),
        "sla_working_days": sla,
        "orgs": items,
    }


# --- export of decisions --------------------------------------------------------------------

EXPORT_COLUMNS = (
    "decided_at",
    "stage",
    "decision",
    "reason",
    "reviewer",
    "org_code",
    "org_name",
    "claim_id",
    "revision",
    "person_name",
    "id_number_masked",
    "category",
    "subject",
    "title",
    "requested_hours",
)
ExportFormat = Literal["csv", "xlsx"]


async def decisions(
    uow: UnitOfWork, authority: Org, *, since: date, until: date
) -> list[tuple[Any, ...]]:
    """Every approval and rejection by the authority and the orgs under it, between the two
    Beijing dates (inclusive), oldest first."""
    if until < since:
        raise RuleViolation("'to' is before 'from'", code="invalid_period")
    if not (since.year >= 2000 and until.year <= 2100):
        raise RuleViolation("a period lies within the years 2000-2100", code="invalid_period")
    if (until - since).days > 366:
        raise RuleViolation("a period is at most one year long", code="invalid_period")
    orgs = {authority.id: authority}
    for child in (
        await uow.session.scalars(select(Org).where(Org.parent_id == authority.id))
    ).all():
        orgs[child.id] = child
    steps = (
        await uow.session.scalars(
            select(HistoryEntry)
            .where(
                HistoryEntry.org_id.in_(list(orgs)),
                HistoryEntry.decision.in_(("approve", "reject")),
                HistoryEntry.at >= beijing_midnight(since),
                HistoryEntry.at < beijing_midnight(until + timedelta(days=1)),
            )
            .order_by(HistoryEntry.at, HistoryEntry.claim_id, HistoryEntry.seq)
        )
    ).all()
    tasks: dict[tuple[str, int], ReviewTask] = {}
    claim_ids = sorted({s.claim_id for s in steps})
    for start in range(0, len(claim_ids), 500):
        for found in (
            await uow.session.scalars(
                select(ReviewTask).where(ReviewTask.claim_id.in_(claim_ids[start : start + 500]))
            )
        ).all():
            tasks.setdefault((found.claim_id, found.revision), found)
    rows = []
    for step in steps:
        task = tasks.get((step.claim_id, step.revision))
        org = orgs[step.org_id]
        rows.append(
            (
                step.at.astimezone(BEIJING).isoformat(timespec="seconds"),
                step.stage,
                step.decision,
                step.reason or "",
                step.actor,
                org.code,
                org.name,
                step.claim_id,
                step.revision,
                task.person_name if task else "",
                task.id_number_masked if task else "",
                task.category if task else "",
                task.subject if task else "",
                task.title if task else "",
                task.requested_hours if task else None,
            )
        )
    return rows
