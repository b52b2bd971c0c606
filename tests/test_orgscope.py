"""The one org scope rule (``libs.common.orgscope``), pure: a token acts for the org it names only
when its role is the role of that org's type and the org is active."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from libs.common.auth import Principal
from libs.common.errors import Forbidden
from libs.common.orgscope import ROLE_OF_ORG_TYPE, acting_org, standing


@dataclass
class Org:
    id: str
    type: str
    active: bool = True


ORGS = {t: Org(f"org-{t}", t) for t in (*ROLE_OF_ORG_TYPE, "city")}
ROLES = ("personnel", "city_admin", "system", "ops", *sorted(set(ROLE_OF_ORG_TYPE.values())))


@pytest.mark.parametrize("org_type", sorted(ORGS))
@pytest.mark.parametrize("role", ROLES)
def test_only_the_role_of_the_orgs_type_acts_for_it(role: str, org_type: str) -> None:
    org = ORGS[org_type]
    principal = Principal(sub="s", role=role, org_id=org.id)
    fits = ROLE_OF_ORG_TYPE.get(org_type) == role
    assert (standing(principal, org) is org) is fits


def test_provider_role_and_provider_org_pair_as_the_admins_do() -> None:
    assert ROLE_OF_ORG_TYPE == {
        "unit": "unit_admin",
        "agency": "agency_admin",
        "district": "district_admin",
        "department": "department_admin",
        "provider": "provider",
        "exam_center": "exam_center",
    }


def test_a_deactivated_org_is_refused_and_a_mismatched_token_is_not_told() -> None:
    closed = Org("p", "provider", active=False)
    with pytest.raises(Forbidden) as refused:
        standing(Principal(sub="s", role="provider", org_id="p"), closed)
    assert (refused.value.status, refused.value.code) == (403, "org_inactive")
    # a token that never acted for it learns nothing about it
    assert standing(Principal(sub="s", role="unit_admin", org_id="p"), closed) is None


def test_the_token_must_name_the_org_and_a_role_among_those_asked() -> None:
    provider = ORGS["provider"]
    assert standing(Principal(sub="s", role="provider", org_id="other"), provider) is None
    assert standing(Principal(sub="s", role="provider"), provider) is None
    assert standing(Principal(sub="s", role="provider", org_id=provider.id), None) is None
    unit = Principal(sub="s", role="unit_admin", org_id=ORGS["unit"].id)
    assert standing(unit, ORGS["unit"], roles=("provider",)) is None


async def test_acting_org_reads_through_the_services_lookup() -> None:
    asked: list[str] = []

    async def lookup(org_id: str) -> Org | None:
        asked.append(org_id)
        return {o.id: o for o in ORGS.values()}.get(org_id)

    unit = ORGS["unit"]
    assert await acting_org(Principal(sub="s", role="unit_admin", org_id=unit.id), lookup) is unit
    assert await acting_org(Principal(sub="s", role="ops", org_id=unit.id), lookup) is None
    assert await acting_org(Principal(sub="s", role="unit_admin", org_id="nope"), lookup) is None
    assert asked == [unit.id, "nope"]  # a role without an org asks nothing
