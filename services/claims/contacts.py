"""Whom to ask (八 咨询方式): the person's auditing bureau with its number from the year's contact
directory, the city bureau, and the platform's technical support line.

The auditing bureau is the authority of the person's unit or agency (四(三) 分级审验): a district
bureau, or for a city-direct unit its competent department. The notice lists the district
bureaus' numbers, the city bureau's and the support line; a department has none in the notice,
so its entry carries no phone and the city bureau's number stands beside it (*interpretation*).
"""

from __future__ import annotations

from pydantic import BaseModel

from libs.common.uow import UnitOfWork
from services.claims import rules
from services.claims.models import OrgReplica, Person

AUDITING_TYPES = ("district", "department")


class ContactView(BaseModel):
    name: str
    phone: str | None
    org_id: str | None = None
    topics: str | None = None


class ContactsView(BaseModel):
    """``auditing_bureau``: null when the person's org has no auditing bureau in the tree."""

    auditing_bureau: ContactView | None
    city_bureau: ContactView
    support: ContactView


def contacts_view(directory: rules.ContactDirectory, bureau: OrgReplica | None) -> ContactsView:
    auditing = None
    if bureau is not None:
        entry = directory.bureau(code=bureau.code, name=bureau.name)
        auditing = ContactView(
            name=bureau.name, phone=entry.phone if entry else None, org_id=bureau.id
        )
    city, support = directory.city_bureau, directory.support
    return ContactsView(
        auditing_bureau=auditing,
        city_bureau=ContactView(name=city.name, phone=city.phone),
        support=ContactView(name=support.name, phone=support.phone, topics=support.topics),
    )


async def auditing_bureau(uow: UnitOfWork, person: Person) -> OrgReplica | None:
    """The authority over the person's unit or agency (its parent district or department)."""
    org = await uow.session.get(OrgReplica, person.org_id)
    if org is None or org.parent_id is None:
        return None
    parent = await uow.session.get(OrgReplica, org.parent_id)
    return parent if parent is not None and parent.type in AUDITING_TYPES else None


async def contacts_of(uow: UnitOfWork, person: Person, year: int) -> ContactsView | None:
    """The person's contacts for ``year``; None when the year's rule data has no directory."""
    ruleset = rules.load_ruleset(year)
    if ruleset.contacts is None:
        return None
    return contacts_view(ruleset.contacts, await auditing_bureau(uow, person))
