"""Persons: registration, transfer, the caller's own person. Who may see or act on a person is
decided by :mod:`services.claims.scope`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from libs.common.auth import Principal
from libs.common.db import insert_ignoring_duplicates, new_id
from libs.common.errors import Conflict, DomainError, Forbidden, NotFound, RuleViolation
from libs.common.events import (
    Affiliation,
    PersonRegistered,
    PersonUpdated,
)
from libs.common.idnumber import validate_id_number
from libs.common.uow import UnitOfWork
from services.claims.ledger import book_pending_learning, book_pending_learning_of
from services.claims.models import (
    OrgReplica,
    Person,
)
from services.claims.scope import admin_org, may_see_org, may_see_person


async def get_person(uow: UnitOfWork, principal: Principal, person_id: str) -> Person:
    person = await uow.session.get(Person, person_id)
    if person is None or not await may_see_person(uow.session, principal, person):
        raise NotFound(f"person {person_id} not found in your scope", code="person_not_found")
    return person


async def my_person(uow: UnitOfWork, principal: Principal) -> Person:
    """The caller's own person: by the token's person id, or the login that registered it."""
    if principal.person_id is not None:
        return await get_person(uow, principal, principal.person_id)
    person = await uow.session.scalar(select(Person).where(Person.account_sub == principal.sub))
    if person is None:
        raise NotFound(
            "no person is registered for this login yet: POST /v1/persons first",
            code="person_not_registered",
        )
    return person


# --- persons --------------------------------------------------------------------------------


async def register_person(
    uow: UnitOfWork,
    principal: Principal,
    *,
    id_number: str,
    name: str,
    phone: str | None,
    affiliation: Affiliation,
    today: date,
    identity_key: str | None = None,
) -> Person:
    """Register a person. A personnel token registers itself only: its login must carry the ID
    number the identity provider verified (or its keyed hash under ``identity_key``)."""
    await admin_org(uow.session, principal)  # a deactivated org's admin: 403 org_inactive
    normalised = validate_id_number(id_number, today=today)
    org = await _affiliation_org(uow, affiliation)
    account_sub: str | None = None
    if principal.role == "personnel":
        # self-registration: a login without a person yet registers itself, once
        if principal.person_id is not None or await uow.session.scalar(
            select(Person.id).where(Person.account_sub == principal.sub)
        ):
            raise Conflict("this login has a registered person already", code="account_has_person")
        # bound to the identity the identity provider verified: a login registers only itself
        if not principal.has_verified_identity:
            raise Forbidden(
                "self-registration needs a login whose ID number the identity provider verified",
                code="identity_not_verified",
            )
        if not principal.is_identity(normalised, identity_key):
            raise Forbidden(
                "a login may register only the ID number its identity provider verified",
                code="identity_mismatch",
            )
        account_sub = principal.sub
    elif not await may_see_org(uow.session, principal, org.id):
        raise Forbidden(
            "only the person, their unit or agency, its authority, or the city bureau may register",
            code="outside_scope",
        )
    if await uow.session.scalar(select(Person.id).where(Person.id_number == normalised)):
        raise Conflict(
            "a person with this ID number is registered already", code="duplicate_person"
        )
    person = Person(
        id_number=normalised,
        name=name.strip(),
        phone=phone,
        affiliation_kind=affiliation.kind,
        org_id=org.id,
        account_sub=account_sub,
    )
    uow.session.add(person)
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "a person with this ID number is registered already", code="duplicate_person"
        ) from exc
    uow.emit(
        PersonRegistered(
            person_id=person.id, id_number=normalised, name=person.name, affiliation=affiliation
        ),
        subject=person.id,
    )
    await book_pending_learning(uow, person)
    return person


async def _affiliation_org(uow: UnitOfWork, affiliation: Affiliation) -> OrgReplica:
    return _checked_org(await uow.session.get(OrgReplica, affiliation.org_id), affiliation)


def _checked_org(org: OrgReplica | None, affiliation: Affiliation) -> OrgReplica:
    if org is None:
        raise RuleViolation(
            f"org {affiliation.org_id} is unknown here (if it was just created, retry shortly)",
            code="unknown_org",
        )
    if org.type != affiliation.kind:
        raise RuleViolation(
            f"affiliation kind {affiliation.kind} does not match org type {org.type}",
            code="affiliation_mismatch",
        )
    if not org.active:
        raise RuleViolation(
            f"org {org.code} was deactivated: no one is registered into it or transferred to it",
            code="org_inactive",
        )
    return org


async def transfer_person(
    uow: UnitOfWork, principal: Principal, person_id: str, affiliation: Affiliation
) -> Person:
    """Move a person to another unit or agency (调动). The city bureau, or an admin whose scope
    holds both the old and the new org, may do it; review moves the open review tasks along
    (unit stage to the new unit, authority stage to its authority) on ``person.updated``."""
    person = await get_person(uow, principal, person_id)
    org = await _affiliation_org(uow, affiliation)
    if not (
        await may_see_org(uow.session, principal, org.id)
        and await may_see_org(uow.session, principal, person.org_id)
    ):
        raise Forbidden(
            "a transfer needs the city bureau or an authority over both orgs", code="outside_scope"
        )
    if person.org_id == org.id:
        raise Conflict("the person is in this org already", code="same_affiliation")
    person.affiliation_kind, person.org_id = affiliation.kind, org.id
    uow.emit(
        PersonUpdated(
            person_id=person.id,
            id_number=person.id_number,
            name=person.name,
            affiliation=affiliation,
        ),
        subject=person.id,
    )
    return person


# --- persons in bulk ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRow:
    """One row of a bulk registration (the body of ``POST /v1/persons``)."""

    id_number: str
    name: str
    phone: str | None
    affiliation: Affiliation


@dataclass(slots=True)
class RowOutcome:
    """201 registered now, 200 registered before with the same name and org (a re-run), or the
    problem that refused the row (its status and code, as ``POST /v1/persons`` would answer)."""

    status: int
    person: Person | None = None
    code: str | None = None
    detail: str | None = None

    @classmethod
    def refused(cls, exc: DomainError) -> RowOutcome:
        return cls(exc.status, code=exc.code, detail=exc.detail)


async def register_persons(
    uow: UnitOfWork, principal: Principal, rows: list[PersonRow], *, today: date
) -> list[RowOutcome]:
    """Register many persons at once, each row on its own (per-row outcome, never all or
    nothing) and idempotent per row: a row whose person is registered already with the same
    name and org answers 200 with that person. Set-based: one query for the orgs, one for the
    persons there already, one multi-row insert; the scope is checked once per org."""
    if principal.role == "personnel":
        raise Forbidden("only admins register persons in bulk", code="outside_scope")
    await admin_org(uow.session, principal)  # a deactivated org's admin: 403 org_inactive
    orgs = {
        o.id: o
        for o in await uow.session.scalars(
            select(OrgReplica).where(OrgReplica.id.in_({r.affiliation.org_id for r in rows}))
        )
    }
    in_scope: dict[str, bool] = {}
    outcomes: list[RowOutcome | None] = [None] * len(rows)
    normalised: dict[int, str] = {}
    for i, row in enumerate(rows):
        try:
            normalised[i] = validate_id_number(row.id_number, today=today)
            org = _checked_org(orgs.get(row.affiliation.org_id), row.affiliation)
            if org.id not in in_scope:
                in_scope[org.id] = await may_see_org(uow.session, principal, org.id)
            if not in_scope[org.id]:
                raise Forbidden(
                    "only the unit or agency, its authority, or the city bureau may register",
                    code="outside_scope",
                )
        except DomainError as exc:
            outcomes[i] = RowOutcome.refused(exc)
            normalised.pop(i, None)
    known = {
        p.id_number: p
        for p in await uow.session.scalars(
            select(Person).where(Person.id_number.in_(set(normalised.values())))
        )
    }
    now = uow.now().astimezone(UTC)
    new: dict[str, Person] = {}
    for i, id_number in normalised.items():
        row = rows[i]
        if id_number in known or id_number in new:
            continue
        new[id_number] = Person(
            id=new_id(),
            id_number=id_number,
            name=row.name.strip(),
            phone=row.phone,
            affiliation_kind=row.affiliation.kind,
            org_id=row.affiliation.org_id,
            account_sub=None,
            created_at=now,
            updated_at=now,
        )
    created = await _insert_persons(uow, list(new.values()))
    first_of: dict[str, int] = {}
    for i, id_number in normalised.items():
        row = rows[i]
        person = known.get(id_number) or new[id_number]
        same = (person.name, person.org_id) == (row.name.strip(), row.affiliation.org_id)
        fresh = id_number in created and id_number not in first_of
        first_of.setdefault(id_number, i)
        if fresh:
            outcomes[i] = RowOutcome(201, person)
        elif same and (id_number in known or id_number in created):
            outcomes[i] = RowOutcome(200, person)
        else:
            outcomes[i] = RowOutcome.refused(
                Conflict(
                    "a person with this ID number is registered already", code="duplicate_person"
                )
            )
    for person in (new[n] for n in created):
        uow.emit(
            PersonRegistered(
                person_id=person.id,
                id_number=person.id_number,
                name=person.name,
                affiliation=Affiliation(kind=person.affiliation_kind, org_id=person.org_id),  # type: ignore[arg-type]
            ),
            subject=person.id,
        )
    await book_pending_learning_of(uow, {n: new[n].id for n in created})
    return [o for o in outcomes if o is not None]


async def _insert_persons(uow: UnitOfWork, persons: list[Person]) -> set[str]:
    """Insert the persons (multi-row batches of one cached statement); the ID numbers that went
    in (one registered by a concurrent request in the meantime does not)."""
    if not persons:
        return set()
    table = Person.__table__
    stmt = insert_ignoring_duplicates(
        table, uow.session.get_bind().dialect.name, index_elements=["id_number"]
    ).returning(table.c.id_number)
    rows = [{c.name: getattr(p, c.key) for c in table.columns} for p in persons]
    return set((await uow.session.execute(stmt, rows)).scalars().all())
