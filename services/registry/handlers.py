"""Events the registry consumes: the org tree (review) and persons (claims), kept as replicas."""

from __future__ import annotations

from libs.common.events import OrgUpserted, PersonRegistered, PersonUpdated
from libs.common.inbox import EventRouter
from services.registry import service

events = EventRouter()
events.route(OrgUpserted, service.upsert_org)
events.route(PersonRegistered, service.upsert_person)
events.route(PersonUpdated, service.upsert_person)
