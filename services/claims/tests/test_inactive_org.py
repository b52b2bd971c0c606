"""A deactivated org takes no one (issue: no registration into a deactivated org): once review's
``org.upserted`` with ``active: false`` reaches claims, ``POST /v1/persons``, a row of
``POST /v1/persons/batch`` and a transfer into that org are refused with 422 ``org_inactive``
and nothing is written; reactivated, the org takes people again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from libs.common.events import OrgUpserted, topic_of
from services.claims.models import Person
from services.claims.tests.harness import Stack, claims_stack, new_id_number
from tests.support import assert_problem


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("inactive-org")) as stack:
        yield stack


async def set_active(stack: Stack, org_id: str, active: bool) -> None:
    """``org.upserted`` as review publishes it on (de)activation: the whole org."""
    code = f"UNI-{org_id[:8]}"
    await stack.publish(
        topic_of("review"),
        OrgUpserted(
            org_id=org_id, code=code, name=code, type="unit", parent_id=None, active=active
        ),
        subject=org_id,
    )


async def persons_count(stack: Stack) -> int:
    async with stack.app.state.service.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Person)) or 0)


def person_body(org_id: str, id_number: str | None = None) -> dict[str, object]:
    return {
        "id_number": id_number or new_id_number(),
        "name": "张三",
        "affiliation": {"kind": "unit", "org_id": org_id},
    }


async def test_registration_and_transfer_into_a_deactivated_org_are_refused(stack: Stack) -> None:
    closed = await stack.add_org("unit")
    open_ = await stack.add_org("unit")
    mover = await stack.register(open_)
    await set_active(stack, closed, False)

    before_persons, before_events = await persons_count(stack), await stack.outbox_count()
    r = await stack.http.post("/v1/persons", json=person_body(closed), headers=stack.city)
    problem = assert_problem(r, 422, "org_inactive")
    assert "deactivated" in problem["detail"]

    rows = [person_body(closed), person_body(open_)]
    r = await stack.http.post("/v1/persons/batch", json={"persons": rows}, headers=stack.city)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["status"], x.get("code")) for x in results] == [(422, "org_inactive"), (201, None)]

    r = await stack.http.post(
        f"/v1/persons/{mover.id}/transfer",
        json={"affiliation": {"kind": "unit", "org_id": closed}},
        headers=stack.city,
    )
    assert_problem(r, 422, "org_inactive")
    r = await stack.http.get(f"/v1/persons/{mover.id}", headers=stack.city)
    assert r.json()["affiliation"]["org_id"] == open_

    # only the batch's good row went in: one person, its person.registered, nothing else
    assert await persons_count(stack) == before_persons + 1
    assert await stack.outbox_count() == before_events + 1

    # reactivated, the org takes people again
    await set_active(stack, closed, True)
    r = await stack.http.post("/v1/persons", json=person_body(closed), headers=stack.city)
    assert r.status_code == 201, r.text
    r = await stack.http.post(
        f"/v1/persons/{mover.id}/transfer",
        json={"affiliation": {"kind": "unit", "org_id": closed}},
        headers=stack.city,
    )
    assert r.status_code == 200, r.text
