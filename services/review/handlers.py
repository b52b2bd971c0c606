"""Events the review service consumes: claims to route, withdrawals, persons' affiliations (from
claims) and the filing status of training projects (from the registry)."""

from __future__ import annotations

from libs.common.events import (
    ClaimSubmitted,
    ClaimWithdrawn,
    PersonRegistered,
    PersonUpdated,
    ProjectApproved,
    ProjectRejected,
    ProjectReturned,
    ProjectSubmitted,
)
from libs.common.inbox import EventRouter
from services.review import projects, service, transfers

events = EventRouter()
events.route(ClaimSubmitted, service.open_task)
events.route(ClaimWithdrawn, service.withdraw)
events.route(PersonRegistered, transfers.person_registered)
events.route(PersonUpdated, transfers.person_updated)
events.route(ProjectSubmitted, projects.project_submitted)
events.route(ProjectApproved, projects.project_approved)
events.route(ProjectReturned, projects.project_returned)
events.route(ProjectRejected, projects.project_rejected)
