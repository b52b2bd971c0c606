"""Events the review service consumes: claims to route, withdrawals."""

from __future__ import annotations

from libs.common.events import ClaimSubmitted, ClaimWithdrawn
from libs.common.inbox import EventRouter
from services.review import service

events = EventRouter()
events.route(ClaimSubmitted, service.open_task)
events.route(ClaimWithdrawn, service.withdraw)
