"""Review use cases: the org directory, routing claims to reviewers, decisions and history.

Routing (DOMAIN.md, 分级审验): stage ``unit`` is decided by the person's unit (or, for a
freelancer, the agency); stage ``authority`` by the unit's parent district or city department, or
the agency's district. Approval at the authority stage approves the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select

from libs.common.auth import Principal
from libs.common.clock import BEIJING
from libs.common.errors import Conflict, NotFound, RuleViolation
from libs.common.events import (
    ClaimApproved,
    ClaimRejected,
    ClaimStagePassed,
    ClaimSubmitted,
    ClaimWithdrawn,
)
from libs.common.uow import UnitOfWork
from libs.common.workdays import working_days_after
from services.review import history, routing
from services.review.directory import ORG_TYPES, check_parent, org_upserted
from services.review.models import Org, ReviewPerson, ReviewProject, ReviewTask, TaskDecision
from services.review.projects import projects_by_id
from services.review.schemas import (
    TaskCredit,
    TaskOut,
    TaskPerson,
    TaskProject,
    TaskUnit,
    VerifiedBy,
)
from services.review.scope import scope_org_ids


async def create_org(
    uow: UnitOfWork, *, code: str, name: str, type: str, parent_id: str | None
) -> Org:
    if type not in ORG_TYPES:
        raise RuleViolation(f"type must be one of {', '.join(ORG_TYPES)}", code="invalid_org_type")
    await check_parent(uow, type, parent_id)
    if await uow.session.scalar(select(Org.id).where(Org.code == code)):
        raise Conflict(f"an org with code {code} exists already", code="duplicate_org_code")
    org = Org(code=code, name=name, type=type, parent_id=parent_id, active=True)
    uow.session.add(org)
    await uow.session.flush()
    uow.emit(org_upserted(org), subject=org.id)
    return org


async def open_task(uow: UnitOfWork, event: ClaimSubmitted) -> None:
    """A new revision starts at the unit stage (see ``routing``); older open tasks of the claim
    are cancelled. The person's affiliation as review knows it wins over the one in the event,
    so a transfer handled before this claim still routes it to the new unit."""
    await _cancel_open(uow, event.claim_id)
    person = await uow.session.get(ReviewPerson, event.person_id)
    unit_org_id = person.org_id if person is not None else event.affiliation.org_id
    route = await routing.route_new_claim(uow, unit_org_id)
    task = ReviewTask(
        claim_id=event.claim_id,
        revision=event.revision,
        stage=route.stage,
        org_id=route.org_id,
        unit_org_id=unit_org_id,
        person_id=event.person_id,
        person_name=event.person_name,
        id_number_masked=event.id_number_masked,
        year=event.year,
        category=event.category,
        subject=event.subject,
        title=event.title,
        requested_hours=event.requested_hours,
        verified_evidence=event.verified_evidence,
        evidence_ids=list(event.evidence_ids),
        references=dict(event.references),
        project_id=event.project_id,
        leave_kind=event.leave_kind,
        leave_reason=event.leave_reason,
        start_date=event.start_date,
        end_date=event.end_date,
        months=event.months,
        travel_days=event.travel_days,
        transfer_date=event.transfer_date,
        issuing_authority=event.issuing_authority,
        expected_credits=[c.model_dump() for c in event.expected_credits],
        warnings=list(event.warnings),
    )
    uow.session.add(task)
    await history.append(
        uow,
        claim_id=event.claim_id,
        revision=event.revision,
        stage=route.stage,
        org_id=route.org_id,
        actor=f"person:{event.person_id}",
        decision="submitted",
    )
    if route.stage == "authority":
        uow.emit(
            ClaimStagePassed(
                claim_id=task.claim_id,
                revision=task.revision,
                stage="unit",
                next_stage="authority",
                org_id=route.org_id,
            ),
            subject=task.claim_id,
        )


async def withdraw(uow: UnitOfWork, event: ClaimWithdrawn) -> None:
    for task in await _cancel_open(uow, event.claim_id):
        await history.append(
            uow,
            claim_id=event.claim_id,
            revision=event.revision,
            stage=task.stage,
            org_id=task.org_id,
            actor=f"person:{event.person_id}",
            decision="withdrawn",
        )


async def _cancel_open(uow: UnitOfWork, claim_id: str) -> Sequence[ReviewTask]:
    tasks = (
        await uow.session.scalars(
            select(ReviewTask)
            .where(ReviewTask.claim_id == claim_id, ReviewTask.status == "open")
            .with_for_update()
        )
    ).all()
    for task in tasks:
        task.status = "cancelled"
    return tasks


async def decide(
    uow: UnitOfWork,
    principal: Principal,
    task_id: str,
    decision: TaskDecision,
    reason: str | None,
    *,
    only_verified: bool = False,
) -> ReviewTask:
    # the row lock makes a second reviewer deciding the same task at once wait, then see it decided
    task = await uow.session.get(ReviewTask, task_id, with_for_update=True)
    scope = await scope_org_ids(uow, principal)
    # city-level roles oversee but do not decide in place of the responsible reviewer
    if task is None or scope is None or task.org_id not in scope:
        raise NotFound(f"review task {task_id} not found in your scope", code="task_not_found")
    if task.status != "open":
        raise Conflict(f"review task {task_id} is {task.status} already", code="task_not_open")
    if only_verified and not task.verified_evidence:
        raise RuleViolation(
            "this task's evidence is not verified by the system; review it one by one",
            code="evidence_not_verified",
        )
    if decision not in ("approve", "reject"):
        raise RuleViolation("decision must be approve or reject", code="invalid_decision")
    if decision == "reject" and not (reason and reason.strip()):
        raise RuleViolation("a rejection needs a reason for the person", code="reason_required")
    task.status = "decided"
    task.decision = decision
    task.reason = reason
    task.decided_by = principal.sub
    task.decided_at = uow.now()
    await history.append(
        uow,
        claim_id=task.claim_id,
        revision=task.revision,
        stage=task.stage,
        org_id=task.org_id,
        actor=principal.sub,
        decision=decision,
        reason=reason,
    )
    if decision == "reject":
        uow.emit(
            ClaimRejected(
                claim_id=task.claim_id,
                revision=task.revision,
                person_id=task.person_id,
                stage=task.stage,
                org_id=task.org_id,
                actor=principal.sub,
                reason=reason or "",
            ),
            subject=task.claim_id,
        )
    elif task.stage == "unit":
        # no valid authority (no parent, a deactivated one) → the city's unrouted queue
        authority = await routing.route_authority(uow, task.org_id)
        uow.session.add(
            ReviewTask(
                **{
                    c: getattr(task, c)
                    for c in [
                        "claim_id",
                        "revision",
                        "person_id",
                        "person_name",
                        "id_number_masked",
                        "unit_org_id",
                        "year",
                        "category",
                        "subject",
                        "title",
                        "requested_hours",
                        "verified_evidence",
                        "evidence_ids",
                        "references",
                        "project_id",
                        "leave_kind",
                        "leave_reason",
                        "start_date",
                        "end_date",
                        "months",
                        "travel_days",
                        "transfer_date",
                        "issuing_authority",
                        "expected_credits",
                        "warnings",
                    ]
                },
                stage="authority",
                org_id=authority.org_id,
            )
        )
        uow.emit(
            ClaimStagePassed(
                claim_id=task.claim_id,
                revision=task.revision,
                stage="unit",
                next_stage="authority",
                org_id=authority.org_id,
            ),
            subject=task.claim_id,
        )
    else:
        uow.emit(
            ClaimApproved(
                claim_id=task.claim_id,
                revision=task.revision,
                person_id=task.person_id,
                org_id=task.org_id,
                actor=principal.sub,
            ),
            subject=task.claim_id,
        )
    await uow.session.flush()
    return task


async def task_views(uow: UnitOfWork, tasks: Sequence[ReviewTask]) -> list[TaskOut]:
    """The tasks as reviewers see them, each with its cited project's filing status and its
    unit's name (one query each for all of them) and, open, its age in working days."""
    known = await projects_by_id(uow, (t.project_id for t in tasks))
    unit_ids = {t.unit_org_id for t in tasks}
    units: dict[str, str] = {}
    if unit_ids:
        rows = await uow.session.execute(select(Org.id, Org.name).where(Org.id.in_(unit_ids)))
        units = {org_id: name for org_id, name in rows.all()}
    today = uow.now().astimezone(BEIJING).date()
    ages: dict[date, int] = {}  # one count per arrival day, not per task
    views = []
    for t in tasks:
        age = None
        if t.status == "open":
            arrived = t.created_at.astimezone(BEIJING).date()
            if arrived not in ages:
                ages[arrived] = working_days_after(arrived, today)
            age = ages[arrived]
        views.append(task_view(t, known.get(t.project_id or ""), units.get(t.unit_org_id), age))
    return views


async def one_task_view(uow: UnitOfWork, task: ReviewTask) -> TaskOut:
    [view] = await task_views(uow, [task])
    return view


async def visible_task(uow: UnitOfWork, principal: Principal, task_id: str) -> ReviewTask:
    """A task the caller may see (its org in the caller's scope; the city sees every task)."""
    task = await uow.session.get(ReviewTask, task_id)
    scope = await scope_org_ids(uow, principal)
    if task is None or (scope is not None and task.org_id not in scope):
        raise NotFound(f"review task {task_id} not found in your scope", code="task_not_found")
    return task


def project_view(project_id: str, project: ReviewProject | None) -> TaskProject:
    if project is None:  # cited, but the registry's filing has not reached review (yet)
        return TaskProject(id=project_id, name=None, year=None, status="unknown", opinion=None)
    return TaskProject(
        id=project.id,
        name=project.name,
        year=project.year,
        status=project.status,
        opinion=project.opinion,
    )


def verified_by(task: ReviewTask, project: ReviewProject | None) -> list[VerifiedBy]:
    """What the system checked itself: claims marks evidence verified only for an e-certificate
    or an exam card found in its replicas of the registry (so the reference cited names which);
    a cited project counts once the city bureau has approved its filing."""
    found: list[VerifiedBy] = []
    references = task.references or {}
    if task.verified_evidence and "certificate_code" in references:
        found.append("e_certificate")
    if task.verified_evidence and "exam_card_no" in references:
        found.append("exam_card")
    if project is not None and project.status == "approved":
        found.append("filed_project")
    return found


def task_view(
    task: ReviewTask,
    project: ReviewProject | None = None,
    unit_name: str | None = None,
    age_working_days: int | None = None,
) -> TaskOut:
    """One task; ``project`` is the replica of the project it cites (if it cites one)."""
    return TaskOut(
        id=task.id,
        claim_id=task.claim_id,
        revision=task.revision,
        stage=task.stage,
        status=task.status,
        org_id=task.org_id,
        person=TaskPerson(
            id=task.person_id, name=task.person_name, id_number_masked=task.id_number_masked
        ),
        unit=TaskUnit(id=task.unit_org_id, name=unit_name),
        year=task.year,
        category=task.category,
        subject=task.subject,
        title=task.title,
        requested_hours=task.requested_hours,
        verified_evidence=task.verified_evidence,
        verified_by=verified_by(task, project),
        evidence_ids=task.evidence_ids or [],
        references=task.references or {},
        project=project_view(task.project_id, project) if task.project_id else None,
        leave_kind=task.leave_kind,
        leave_reason=task.leave_reason,
        start_date=task.start_date.isoformat() if task.start_date else None,
        end_date=task.end_date.isoformat() if task.end_date else None,
        months=task.months,
        travel_days=task.travel_days,
        transfer_date=task.transfer_date.isoformat() if task.transfer_date else None,
        issuing_authority=task.issuing_authority,
        expected_credits=[TaskCredit.model_validate(c) for c in task.expected_credits or []],
        warnings=list(task.warnings or []),
        decision=task.decision,
        reason=task.reason,
        decided_by=task.decided_by,
        decided_at=task.decided_at.isoformat() if task.decided_at else None,
        created_at=task.created_at.isoformat(),
        age_working_days=age_working_days,
    )
