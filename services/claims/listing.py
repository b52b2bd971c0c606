"""The org-wide lists the console's pages read (``GET /v1/persons``, ``GET /v1/claims`` without a
person): the persons and claims in the caller's scope under an org, filtered, with the total of
the whole filtered list and keyset pages.

Each page is three statements whatever its size: the scope (:func:`scope.org_scope`, a walk up the
org tree bounded by its depth), the page (persons or claims joined with what a row shows) and the
count. Who may read is decided by :mod:`services.claims.scope`, never here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.asciitext import fold_width
from libs.common.pagination import page, paginate
from services.claims.models import Claim, OrgReplica, Person
from services.claims.scope import OrgScope

# what a search box may hold to be read as (part of) a masked ID number: 370402********123X
_MASKED_PART = re.compile(r"^[0-9*X]+$")
_FULL_ID = re.compile(r"^[0-9]{17}[0-9X]$")
MASK = "*" * 8

ClaimSort = Literal["created_at", "-created_at"]


def masked_id_sql() -> ColumnElement[str]:
    """The masked ID number (first 6, eight stars, last 4) computed in SQL, as
    :func:`libs.common.idnumber.mask_id_number` writes it."""
    return (
        func.substr(Person.id_number, 1, 6)
        .concat(MASK)
        .concat(func.substr(Person.id_number, 15, 4))
    )


def person_matches(q: str) -> ColumnElement[bool] | None:
    """``q`` against a person: part of the name, part of the masked ID number (the visible
    digits: region code, last four), or the whole ID number exactly. Never part of the hidden
    digits, so a search cannot be used to read what the mask hides."""
    needle = fold_width(q).strip()
    if not needle:
        return None
    conditions: list[ColumnElement[bool]] = [Person.name.contains(needle, autoescape=True)]
    upper = needle.upper()
    if _FULL_ID.match(upper):
        conditions.append(Person.id_number == upper)
    elif _MASKED_PART.match(upper):
        conditions.append(masked_id_sql().contains(upper, autoescape=True))
    return or_(*conditions)


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_cursor: str | None
    total: int


async def persons_page(
    session: AsyncSession, scope: OrgScope, q: str | None, cursor: str | None, limit: int
) -> Page:
    """The persons of the scope matching ``q``, in registration order; rows ``(Person, org
    name)``."""
    where: list[ColumnElement[bool]] = []
    if (condition := scope.person_condition()) is not None:
        where.append(condition)
    if q and (match := person_matches(q)) is not None:
        where.append(match)
    stmt = (
        select(Person, OrgReplica.name)
        .outerjoin(OrgReplica, OrgReplica.id == Person.org_id)
        .where(*where)
    )
    rows = list(
        (await session.execute(paginate(stmt, Person.created_at, Person.id, cursor, limit))).all()
    )
    total = int(await session.scalar(select(func.count(Person.id)).where(*where)) or 0)
    items, next_cursor = _cut(rows, limit)
    return Page(items, next_cursor, total)


@dataclass(frozen=True)
class ClaimFilter:
    year: int | None = None
    status: str | None = None
    category: str | None = None
    stage: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.year is not None:
            where.append(Claim.year == self.year)
        if self.status:
            where.append(Claim.status == self.status)
        if self.category:
            where.append(Claim.category == self.category)
        if self.stage:
            where.append(Claim.stage == self.stage)
        return where


async def claims_page(
    session: AsyncSession,
    persons: ColumnElement[bool] | None,
    filters: ClaimFilter,
    sort: ClaimSort,
    cursor: str | None,
    limit: int,
) -> Page:
    """The claims of the persons ``persons`` selects (None: everyone) matching ``filters``,
    oldest (``created_at``) or newest (``-created_at``) first; rows ``(Claim, Person)``."""
    where = filters.clauses()
    if persons is not None:
        where.append(persons)
    stmt = select(Claim, Person).join(Person, Person.id == Claim.person_id).where(*where)
    paged = paginate(
        stmt, Claim.created_at, Claim.id, cursor, limit, descending=sort == "-created_at"
    )
    rows = list((await session.execute(paged)).all())
    count = select(func.count(Claim.id)).join(Person, Person.id == Claim.person_id).where(*where)
    total = int(await session.scalar(count) or 0)
    items, next_cursor = _cut(rows, limit)
    return Page(items, next_cursor, total)


def _cut(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """:func:`page` over rows whose first column is the entity the cursor keys on."""
    _, next_cursor = page([r[0] for r in rows], limit)
    return rows[:limit], next_cursor
