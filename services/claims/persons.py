"""Persons: registration, transfer, the caller's own person. Who may see or act on a person is
decided by :mod:`services.claims.scope`."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from libs.common.auth import Principal
from libs.common.errors import Conflict, Forbidden, NotFound, RuleViolation
from libs.common.events import (
    Affiliation,
    PersonRegistered,
    PersonUpdated,
)
from libs.common.idnumber import validate_id_number
from libs.common.uow import UnitOfWork
from services.claims.ledger import book_pending_learning
from services.claims.models import (
    OrgReplica,
    Person,
)
from services.claims.scope import may_see_org, may_see_person


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
    org = await uow.session.get(OrgReplica, affiliation.org_id)
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
