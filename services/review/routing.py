"""Where a review task goes (分级审验), as the org directory and people change.

- Stage ``unit``: the person's unit, or for a freelancer the agency, while it is active.
- Stage ``authority``: the first-stage org's parent district or city department, while active.
- A deactivated first-stage org takes no new claims: its claims go straight to its authority.
- Nothing is ever unroutable: with no valid authority (no parent, a deactivated parent, an org
  unknown here) a task goes to the city's unrouted queue (``org_id = "unrouted"``, stage
  ``authority``), which the city bureau sees and assigns.

Every move of an open task (deactivation, transfer of the person, a moved unit, the city's
assignment) is a step of the claim's history naming both orgs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from libs.common.errors import Conflict, NotFound, RuleViolation
from libs.common.events import ClaimStagePassed
from libs.common.uow import UnitOfWork
from services.review import history
from services.review.models import Org, ReviewTask, TaskStage

UNROUTED = "unrouted"
FIRST_STAGE_TYPES = ("unit", "agency")
AUTHORITY_TYPES = ("district", "department")


@dataclass(frozen=True)
class Route:
    stage: TaskStage
    org_id: str  # an org id, or UNROUTED


def authority_route(org: Org | None, parent: Org | None) -> Route:
    """The authority stage for claims of ``org`` (pure: the two orgs as they are now)."""
    if (
        org is not None
        and parent is not None
        and org.parent_id == parent.id
        and parent.active
        and parent.type in AUTHORITY_TYPES
    ):
        return Route("authority", parent.id)
    return Route("authority", UNROUTED)


def first_route(org: Org | None, parent: Org | None) -> Route:
    """Where a new claim of a person of ``org`` starts."""
    if org is not None and org.active and org.type in FIRST_STAGE_TYPES:
        return Route("unit", org.id)
    return authority_route(org, parent)


async def _org_and_parent(uow: UnitOfWork, org_id: str) -> tuple[Org | None, Org | None]:
    org = await uow.session.get(Org, org_id)
    parent = await uow.session.get(Org, org.parent_id) if org and org.parent_id else None
    return org, parent


async def route_new_claim(uow: UnitOfWork, org_id: str) -> Route:
    return first_route(*await _org_and_parent(uow, org_id))


async def route_authority(uow: UnitOfWork, org_id: str) -> Route:
    return authority_route(*await _org_and_parent(uow, org_id))


async def move_task(
    uow: UnitOfWork,
    task: ReviewTask,
    to: Route,
    *,
    actor: str,
    reason: str,
    decision: Literal["moved", "assigned"] = "moved",
) -> bool:
    """Move an open task to ``to`` (recorded on history); False when it is there already."""
    if (task.stage, task.org_id) == (to.stage, to.org_id):
        return False
    from_org_id, from_stage = task.org_id, task.stage
    task.stage, task.org_id = to.stage, to.org_id
    await history.append(
        uow,
        claim_id=task.claim_id,
        revision=task.revision,
        stage=to.stage,
        org_id=to.org_id,
        from_org_id=from_org_id,
        actor=actor,
        decision=decision,
        reason=reason,
    )
    if from_stage == "unit" and to.stage == "authority":
        # the unit stage is skipped (its org is gone): claims follows the claim's stage
        uow.emit(
            ClaimStagePassed(
                claim_id=task.claim_id,
                revision=task.revision,
                stage="unit",
                next_stage="authority",
                org_id=to.org_id,
            ),
            subject=task.claim_id,
        )
    return True


async def assign(uow: UnitOfWork, task_id: str, org_id: str, *, actor: str) -> ReviewTask:
    """The city bureau gives an open authority-stage task (typically from the unrouted queue) to
    an active district or department."""
    task = await uow.session.get(ReviewTask, task_id, with_for_update=True)
    if task is None:
        raise NotFound(f"review task {task_id} not found", code="task_not_found")
    if task.status != "open":
        raise Conflict(f"review task {task_id} is {task.status} already", code="task_not_open")
    if task.stage != "authority":
        raise RuleViolation(
            "only authority-stage tasks are assigned; the unit stage belongs to the person's unit",
            code="not_assignable",
        )
    org = await uow.session.get(Org, org_id)
    if org is None or org.type not in AUTHORITY_TYPES:
        raise RuleViolation(
            f"org {org_id} is not a district or a department", code="invalid_assignee"
        )
    if not org.active:
        raise RuleViolation(f"org {org.code} is deactivated", code="org_inactive")
    await move_task(
        uow,
        task,
        Route("authority", org.id),
        actor=actor,
        reason=f"assigned to org {org.code}",
        decision="assigned",
    )
    return task
