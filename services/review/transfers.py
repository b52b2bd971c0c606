"""Claims follow people (调动): when a person's affiliation changes, their open unit-stage tasks
move to the new unit and their authority-stage tasks to the new unit's authority. The old org loses
them at once (its reviewers get 404), and each move is a history step naming both orgs.

Against concurrent decisions (PostgreSQL, READ COMMITTED): the person's open tasks are locked
twice. The first ``SELECT … FOR UPDATE`` waits for any decision in flight on them; a unit-stage
approval that committed meanwhile created an authority-stage task the first statement could not
see, and the second statement (a fresh snapshot) finds and locks it. A decision committed before
the move stays valid; a decision attempted after waits for the move, then finds the task gone
from the old org's scope.
"""

from __future__ import annotations

from sqlalchemy import select

from libs.common.events import PersonRegistered, PersonUpdated
from libs.common.uow import UnitOfWork
from services.review import routing
from services.review.models import ReviewPerson, ReviewTask


async def person_registered(uow: UnitOfWork, event: PersonRegistered) -> None:
    # never overwrite: a registration delivered late must not undo a transfer seen before it
    if await uow.session.get(ReviewPerson, event.person_id) is None:
        uow.session.add(ReviewPerson(person_id=event.person_id, org_id=event.affiliation.org_id))


async def person_updated(uow: UnitOfWork, event: PersonUpdated) -> None:
    new_org_id = event.affiliation.org_id
    person = await uow.session.get(ReviewPerson, event.person_id, with_for_update=True)
    if person is None:
        uow.session.add(ReviewPerson(person_id=event.person_id, org_id=new_org_id))
    else:
        person.org_id = new_org_id
    stmt = (
        select(ReviewTask)
        .where(ReviewTask.person_id == event.person_id, ReviewTask.status == "open")
        .order_by(ReviewTask.created_at, ReviewTask.id)
        .with_for_update()
    )
    await uow.session.scalars(stmt)  # waits out decisions in flight
    tasks = (await uow.session.scalars(stmt.execution_options(populate_existing=True))).all()
    unit_route = await routing.route_new_claim(uow, new_org_id)
    authority_route = await routing.route_authority(uow, new_org_id)
    for task in tasks:
        if task.unit_org_id == new_org_id:
            continue
        old_unit = task.unit_org_id
        task.unit_org_id = new_org_id
        to = unit_route if task.stage == "unit" else authority_route
        await routing.move_task(
            uow,
            task,
            to,
            actor="system:transfer",
            reason=f"person transferred from org {old_unit} to org {new_org_id}",
        )
