"""The replica of the registry's training-project filings (备案) that review keeps, fed by
``project.submitted`` / ``approved`` / ``returned`` / ``rejected``: a reviewer sees, on each task
whose claim cites a project, whether that project is filed. Each event carries the project's
name, year and applicant, so the latest event simply overwrites (the registry's topic is keyed by
project id: one project's events arrive in order)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from libs.common.events import ProjectApproved, ProjectRejected, ProjectReturned, ProjectSubmitted
from libs.common.uow import UnitOfWork
from services.review.models import ProjectStatus, ReviewProject

ProjectEvent = ProjectSubmitted | ProjectApproved | ProjectReturned | ProjectRejected


async def _upsert(uow: UnitOfWork, event: ProjectEvent, status: ProjectStatus) -> None:
    opinion = event.opinion if isinstance(event, ProjectReturned | ProjectRejected) else None
    project = await uow.session.get(ReviewProject, event.project_id)
    if project is None:
        project = ReviewProject(id=event.project_id)
        uow.session.add(project)
    project.name, project.year, project.applicant_org_id = (
        event.name,
        event.year,
        event.applicant_org_id,
    )
    project.status, project.opinion = status, opinion


async def project_submitted(uow: UnitOfWork, event: ProjectSubmitted) -> None:
    await _upsert(uow, event, "submitted")


async def project_approved(uow: UnitOfWork, event: ProjectApproved) -> None:
    await _upsert(uow, event, "approved")


async def project_returned(uow: UnitOfWork, event: ProjectReturned) -> None:
    await _upsert(uow, event, "returned")


async def project_rejected(uow: UnitOfWork, event: ProjectRejected) -> None:
    await _upsert(uow, event, "rejected")


async def projects_by_id(uow: UnitOfWork, ids: Iterable[str | None]) -> dict[str, ReviewProject]:
    """The replicas of the projects ``ids`` name (one query; unknown ones are left out)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await uow.session.scalars(select(ReviewProject).where(ReviewProject.id.in_(wanted)))
    return {p.id: p for p in rows}
