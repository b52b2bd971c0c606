"""Who reviews what: the orgs a reviewer's token acts for, by the one rule of
:mod:`libs.common.orgscope` (the role fits the org's type; a deactivated org's tokens are refused
with 403 ``org_inactive``), read from review's own org table. Tasks, decisions, a claim's history
and an authority's queues and decisions export are all scoped through here."""

from __future__ import annotations

from collections.abc import Collection

from libs.common.auth import ADMIN_ROLE_OF_ORG_TYPE, ADMIN_ROLES, Principal
from libs.common.orgscope import acting_org
from libs.common.uow import UnitOfWork
from services.review.models import Org
from services.review.routing import AUTHORITY_TYPES

# the admins of the second stage (审验): their queues and their decisions export
AUTHORITY_ROLES = frozenset(ADMIN_ROLE_OF_ORG_TYPE[t] for t in AUTHORITY_TYPES)


async def acting_admin_org(
    uow: UnitOfWork, principal: Principal, roles: Collection[str] = ADMIN_ROLES
) -> Org | None:
    """The org a reviewer's token acts for (None: not an admin among ``roles``, an unknown org,
    or a role that does not fit the org's type); 403 ``org_inactive`` once it is deactivated."""

    async def org_of(org_id: str) -> Org | None:
        return await uow.session.get(Org, org_id)

    return await acting_org(principal, org_of, roles=roles)


async def scope_org_ids(uow: UnitOfWork, principal: Principal) -> set[str] | None:
    """Orgs whose tasks the caller may see; None means every org (city-level oversight)."""
    if principal.is_city:
        return None
    org = await acting_admin_org(uow, principal)
    return set() if org is None else {org.id}
