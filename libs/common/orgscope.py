"""Who acts for an org: the one rule every service applies to a token with an org role.

A token of an org role (``unit_admin``, ``agency_admin``, ``district_admin``,
``department_admin``, ``provider``, ``exam_center``) acts for the org its ``org_id`` names only
when all of these hold:

- the org is known to the service (its replica of review's directory, or review's own table);
- the role is the one of the org's type (:data:`ROLE_OF_ORG_TYPE`): a ``provider`` token for a
  provider org, a ``unit_admin`` for a unit, a ``district_admin`` for a district, …; an
  ``org_id`` alone grants nothing (a ``unit_admin`` or ``personnel`` token naming a provider is
  no provider);
- the org is active: once review deactivates it (``PATCH /v1/orgs/{id} {"active": false}``,
  carried to every service by ``org.upserted``), its tokens read and write nothing, and every
  request they make is refused with 403 ``org_inactive`` — the token is not what it was.

A token that does not act for its org is answered by each service's convention for what it then
asks (404 for an object outside its scope, 403 for a role not allowed); the rule itself is pure,
each service supplies the lookup of its own org table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Protocol, TypeVar

from libs.common.auth import ADMIN_ROLE_OF_ORG_TYPE, Principal
from libs.common.errors import Forbidden

# the one role that acts for each type of org (the city bureau's city_admin carries no org)
ROLE_OF_ORG_TYPE: dict[str, str] = {
    **ADMIN_ROLE_OF_ORG_TYPE,
    "provider": "provider",
    "exam_center": "exam_center",
}
ORG_ROLES = frozenset(ROLE_OF_ORG_TYPE.values())


class OrgFacts(Protocol):
    """What the rule reads of an org row (review's ``Org``, a service's ``OrgReplica``)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def active(self) -> bool: ...


OrgT = TypeVar("OrgT", bound=OrgFacts)


class OrgInactive(Forbidden):
    """The token's org was deactivated: 403 ``org_inactive``."""

    def __init__(self, org_id: str) -> None:
        super().__init__(
            "your organisation was deactivated: its accounts no longer read or change anything",
            code="org_inactive",
            org_id=org_id,
        )


def token_org_id(principal: Principal) -> str | None:
    """The org id the token names, if it names one as a string."""
    org_id = principal.org_id
    return org_id if isinstance(org_id, str) and org_id else None


def role_fits(role: str, org: OrgFacts) -> bool:
    """Whether ``role`` is the role that acts for an org of this type."""
    return ROLE_OF_ORG_TYPE.get(org.type) == role


def standing(
    principal: Principal, org: OrgT | None, *, roles: Collection[str] = ORG_ROLES
) -> OrgT | None:
    """``org`` if the principal acts for it (named by the token, role among ``roles`` and fit for
    the org's type); None if it does not. Raises :class:`OrgInactive` when it would act for the
    org but the org is deactivated."""
    if org is None or principal.role not in roles or token_org_id(principal) != org.id:
        return None
    if not role_fits(principal.role, org):
        return None
    if not org.active:
        raise OrgInactive(org.id)
    return org


async def acting_org(
    principal: Principal,
    lookup: Callable[[str], Awaitable[OrgT | None]],
    *,
    roles: Collection[str] = ORG_ROLES,
) -> OrgT | None:
    """The org the principal acts for (see :func:`standing`), read through the service's
    ``lookup`` of its org table; None for a role without an org or outside ``roles``, an
    unknown org, or a role that does not fit the org's type."""
    org_id = token_org_id(principal)
    if org_id is None or principal.role not in roles:
        return None
    return standing(principal, await lookup(org_id), roles=roles)
