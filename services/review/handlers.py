"""Events the review service consumes: claims to route, withdrawals, persons' affiliations."""

from __future__ import annotations

from libs.common.events import ClaimSubmitted, ClaimWithdrawn, PersonRegistered, PersonUpdated
from libs.common.inbox import EventRouter
from services.review import service, transfers

events = EventRouter()
events.route(ClaimSubmitted, service.open_task)
events.route(ClaimWithdrawn, service.withdraw)
events.route(PersonRegistered, transfers.person_registered)
events.route(PersonUpdated, transfers.person_updated)
