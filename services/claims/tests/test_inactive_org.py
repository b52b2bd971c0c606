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
from services.claims.tests.harness import Stack, claims_stack, new_id_number, one_day_training
from tests.support import assert_problem


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("inactive-org")) as stack:
        yield stack


async def set_active(stack: Stack, org_id: str, active: bool, parent_id: str | None = None) -> None:
    """``org.upserted`` as review publishes it on (de)activation: the whole unit."""
    code = f"UNI-{org_id[:8]}"
    await stack.publish(
        topic_of("review"),
        OrgUpserted(
            org_id=org_id, code=code, name=code, type="unit", parent_id=parent_id, active=active
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


# --- issue 17, finding 4: a deactivated org's admins read and change nothing -------------------


async def test_a_deactivated_units_admin_reads_and_writes_nothing(stack: Stack) -> None:
    """PIPL: the unit admin's token read persons with full ID numbers, claims, evidence content
    and the compliance CSV after the unit was deactivated. Now every read and write of that
    token answers 403 ``org_inactive``; the district above keeps its oversight, the person their
    own data; reactivated, the unit's admin reads again."""
    district = await stack.add_org("district")
    unit = await stack.add_org("unit", district)
    other = await stack.add_org("unit", district)
    person = await stack.register(unit)
    evidence_id = await stack.upload(person)
    claim = await stack.submit(person, one_day_training([evidence_id]))
    admin = stack.auth("unit_admin", unit)
    reads = [
        f"/v1/persons/{person.id}",
        f"/v1/claims/{claim['id']}",
        f"/v1/claims?person_id={person.id}",
        f"/v1/evidence/{evidence_id}",
        f"/v1/evidence/{evidence_id}/content",
        f"/v1/persons/{person.id}/transcripts/2026",
        f"/v1/reports/compliance?year=2026&org_id={unit}&format=csv",
        "/v1/reports/compliance?year=2026&format=json",
    ]
    for path in reads:
        r = await stack.http.get(path, headers=admin)
        assert r.status_code == 200, (path, r.text)
    r = await stack.http.get(f"/v1/persons/{person.id}", headers=admin)
    assert r.json()["id_number"] == person.id_number  # in scope: the full number

    await set_active(stack, unit, False, parent_id=district)

    for path in reads:
        r = await stack.http.get(path, headers=admin)
        problem = assert_problem(r, 403, "org_inactive")
        assert person.id_number not in r.text and person.id not in r.text.replace(path, "")
        assert "deactivated" in problem["detail"], path
    before_persons, before_events = await persons_count(stack), await stack.outbox_count()
    writes = [
        ("/v1/persons", person_body(unit)),
        ("/v1/persons", person_body(other)),
        ("/v1/persons/batch", {"persons": [person_body(unit)]}),
        (f"/v1/persons/{person.id}/transfer", {"affiliation": {"kind": "unit", "org_id": other}}),
        (f"/v1/claims/{claim['id']}/withdraw", {}),
    ]
    for path, body in writes:
        r = await stack.http.post(path, json=body, headers=admin)
        assert_problem(r, 403, "org_inactive")
    assert await persons_count(stack) == before_persons
    assert await stack.outbox_count() == before_events
    assert (await stack.claim(claim["id"]))["status"] == "in_review"

    # the district's oversight and the person's own access go on
    district_admin = stack.auth("district_admin", district)
    r = await stack.http.get(f"/v1/persons/{person.id}", headers=district_admin)
    assert r.status_code == 200, r.text
    r = await stack.http.get(f"/v1/claims/{claim['id']}", headers=person.auth)
    assert r.status_code == 200, r.text

    await set_active(stack, unit, True, parent_id=district)
    for path in reads:
        assert (await stack.http.get(path, headers=admin)).status_code == 200, path
