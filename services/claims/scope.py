"""Who may see what: the one answer to "may this principal see this person / this org", for
every endpoint of the claims service (persons, claims, evidence, transcripts, reports, title
readiness).

Scope follows the replica of review's org tree:

- ``city_admin`` sees everything (``system``, the e-learning platform's integration, and
  ``ops`` see no person);
- an admin (``district_admin``, ``department_admin``, ``unit_admin``, ``agency_admin``) sees its
  own org and everything under it — but only if it acts for the org its token names, by the one
  rule of :mod:`libs.common.orgscope`: its role matches the org's type (a ``unit_admin`` token
  naming a district grants nothing, not the district) and the org is active (a deactivated org's
  admins are refused everything with 403 ``org_inactive``);
- ``personnel`` sees its own person only.

Out of scope is answered like missing (404), so neither existence nor ownership leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.auth import ADMIN_ROLES, Principal, require_role
from libs.common.errors import NotFound
from libs.common.orgscope import acting_org, token_org_id
from services.claims.models import OrgReplica, Person

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])

REPORT_ROLES = ("city_admin", *sorted(ADMIN_ROLES))


async def org_chain(session: AsyncSession, org_id: str) -> list[str]:
    """The org and its ancestors, nearest first (a cyclic replica still terminates)."""
    chain: list[str] = []
    current: str | None = org_id
    while current is not None and current not in chain:
        chain.append(current)
        org = await session.get(OrgReplica, current)
        current = org.parent_id if org else None
    return chain


async def admin_org(session: AsyncSession, principal: Principal) -> OrgReplica | None:
    """The org an admin token acts for (None: not an admin, or its role does not fit the org's
    type); 403 ``org_inactive`` once the org is deactivated."""

    async def replica(org_id: str) -> OrgReplica | None:
        return await session.get(OrgReplica, org_id)

    return await acting_org(principal, replica, roles=ADMIN_ROLES)


async def admin_over(session: AsyncSession, principal: Principal, org_id: str) -> bool:
    """Whether an admin token acts for an org at or above ``org_id`` in the tree (the rule of
    :func:`admin_org`: a unit_admin token naming a district grants nothing; a deactivated org's
    token raises 403 ``org_inactive``, whatever it asks for)."""
    own = await admin_org(session, principal)
    return own is not None and own.id in await org_chain(session, org_id)


async def may_see_org(session: AsyncSession, principal: Principal, org_id: str) -> bool:
    """The city roles see every org; an admin its own org and those under it."""
    return principal.is_city or await admin_over(session, principal, org_id)


def is_self(principal: Principal, person: Person) -> bool:
    """A personnel token names its person, or is the login that registered it."""
    if principal.role != "personnel":
        return False
    if principal.person_id is not None:
        return principal.person_id == person.id
    return person.account_sub is not None and person.account_sub == principal.sub


async def may_see_person(session: AsyncSession, principal: Principal, person: Person) -> bool:
    if principal.role == "personnel":
        return is_self(principal, person)
    return await may_see_org(session, principal, person.org_id)


# --- the persons an org-wide read covers ----------------------------------------------------


@dataclass(frozen=True)
class OrgScope:
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


CITY = OrgScope(org=None, root=None)


async def org_scope(session: AsyncSession, principal: Principal, org_id: str | None) -> OrgScope:
    """The scope of an org-wide read (a report) on ``org_id`` for this caller.

    City roles see any org (no org: the city); admins their own org's subtree (no org: their
    own), with the role checked against the org type as for persons. Other roles → 403
    ``role_not_allowed``; an org that is unknown or outside the caller's scope → 404
    ``org_not_found`` (existence is not leaked)."""
    require_role(principal, *REPORT_ROLES)
    if principal.is_city and org_id is None:
        return CITY
    target = org_id or token_org_id(principal) or ""
    org = await session.get(OrgReplica, target)
    if org is None or not await may_see_org(session, principal, target):
        raise NotFound(f"org {target} not found in your scope", code="org_not_found")
    if org.type == "city":
        return OrgScope(org=org, root=None)
    return OrgScope(org=org, root=org.id)
