"""Events the sync service consumes: persons (for ID numbers), credited and revoked claims."""

from __future__ import annotations

from libs.common.events import ClaimCredited, ClaimCreditRevoked, PersonRegistered, PersonUpdated
from libs.common.inbox import EventRouter
from services.sync import service

events = EventRouter()
events.route(PersonRegistered, service.upsert_person)
events.route(PersonUpdated, service.upsert_person)
events.route(ClaimCredited, service.enqueue_credited_claim)
events.route(ClaimCreditRevoked, service.void_revoked_claim)
