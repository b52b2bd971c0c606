"""The org directory as it changes (PATCH: rename, re-code, move, deactivate), the city's unrouted
queue and its assignment, and the routing matrix: where each stage of a claim goes for every shape
of the directory, including a person transferred at each stage."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.review.tests.support import Review, code
from tests.support import assert_problem


async def org(review: Review, label: str) -> dict[str, Any]:
    r = await review.http.get(f"/v1/orgs/{review.orgs[label]}", headers=review.city)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def upserts(review: Review, label: str) -> list[dict[str, Any]]:
    return [e.data for e in await review.outbox(review.orgs[label]) if e.type == "org.upserted"]


# === PATCH /v1/orgs/{id} ====================================================================


class TestPatch:
    async def test_rename_recode_and_move_publish_the_whole_org(self, review: Review) -> None:
        await review.add("Upatch", "unit", "D1")
        new_code = code()
        r = await review.patch("Upatch", name="枣庄市妇幼保健院", code=new_code)
        assert r.status_code == 200, r.text
        assert (r.json()["name"], r.json()["code"], r.json()["active"]) == (
            "枣庄市妇幼保健院",
            new_code,
            True,
        )
        r = await review.patch("Upatch", parent_id=review.orgs["P"])
        assert r.status_code == 200 and r.json()["parent_id"] == review.orgs["P"]
        assert (await org(review, "Upatch"))["parent_id"] == review.orgs["P"]
        events = await upserts(review, "Upatch")
        assert len(events) == 3  # created, renamed+recoded, moved
        assert events[1] | {} == {
            "org_id": review.orgs["Upatch"],
            "code": new_code,
            "name": "枣庄市妇幼保健院",
            "type": "unit",
            "parent_id": review.orgs["D1"],
            "active": True,
            "self_appraising": False,
        }
        assert events[2]["parent_id"] == review.orgs["P"]
        # the same values again change nothing and publish nothing
        r = await review.patch("Upatch", name="枣庄市妇幼保健院", parent_id=review.orgs["P"])
        assert r.status_code == 200
        assert len(await upserts(review, "Upatch")) == 3

    async def test_the_city_marks_a_self_appraising_unit(self, review: Review) -> None:
        """Issue 20 item 10 (五(二) 职称自主评聘单位): a flag on a unit, set by the city bureau,
        shown on the org and carried to the replicas by org.upserted; units only."""
        await review.add("Uself", "unit", "D1")
        assert (await org(review, "Uself"))["self_appraising"] is False
        r = await review.patch("Uself", self_appraising=True)
        assert r.status_code == 200, r.text
        assert r.json()["self_appraising"] is True
        assert (await org(review, "Uself"))["self_appraising"] is True
        assert (await upserts(review, "Uself"))[-1]["self_appraising"] is True
        # only the city sets it
        r = await review.http.patch(
            f"/v1/orgs/{review.orgs['Uself']}",
            json={"self_appraising": False},
            headers=review.reviewer("D1"),
        )
        assert r.status_code == 403
        # a district is no 职称自主评聘单位: refused, nothing changed or published
        before = len(await upserts(review, "D1"))
        r = await review.patch("D1", self_appraising=True)
        assert_problem(r, 422, "self_appraising_not_unit")
        assert (await org(review, "D1"))["self_appraising"] is False
        assert len(await upserts(review, "D1")) == before

    @pytest.mark.parametrize(
        ("label", "body", "rule"),
        [
            ("Dbad", {"parent_id": "@Dbad"}, "org_cycle"),  # itself
            ("Ubad", {"parent_id": "@U1"}, "invalid_org_parent"),  # a unit under a unit
            ("Abad", {"parent_id": "@P"}, "invalid_org_parent"),  # an agency under a department
            ("Ubad", {"parent_id": None}, "invalid_org_parent"),  # a unit with no parent
            ("Ubad", {"parent_id": "@Dgone"}, "parent_inactive"),
            ("Ubad", {"parent_id": "no-such-org"}, "unknown_parent_org"),
            ("Ubad", {"code": "@U1"}, "duplicate_org_code"),
        ],
    )
    async def test_refused_changes_change_nothing(
        self, review: Review, label: str, body: dict[str, Any], rule: str
    ) -> None:
        for extra, type_, parent in (
            ("Dbad", "district", "C"),
            ("Dgone", "district", "C"),
            ("Ubad", "unit", "D1"),
            ("Abad", "agency", "D1"),
        ):
            if extra not in review.orgs:
                await review.add(extra, type_, parent)
        await review.patch("Dgone", active=False)
        before = await org(review, label)
        events_before = len(await upserts(review, label))
        resolved = dict(body)
        if str(body.get("parent_id", "")).startswith("@"):
            resolved["parent_id"] = review.orgs[body["parent_id"][1:]]
        if "code" in body:
            resolved["code"] = (await org(review, body["code"][1:]))["code"]
        r = await review.patch(label, **{**resolved, "name": "changed too"})
        assert_problem(r, 422, rule)
        assert await org(review, label) == before
        assert len(await upserts(review, label)) == events_before

    async def test_only_the_city_changes_orgs(self, review: Review) -> None:
        for headers in (review.reviewer("D1"), review.reviewer("U1"), review.auth("system")):
            r = await review.http.patch(
                f"/v1/orgs/{review.orgs['U1']}", json={"name": "x"}, headers=headers
            )
            assert_problem(r, 403, "role_not_allowed")
        r = await review.http.patch("/v1/orgs/nope", json={"name": "x"}, headers=review.city)
        assert_problem(r, 404, "org_not_found")


# === deactivation and the unrouted queue ===================================================


class TestDeactivation:
    async def test_a_deactivated_unit_hands_its_tasks_to_its_authority(
        self, review: Review
    ) -> None:
        await review.add("Dx", "district", "C")
        await review.add("Ux", "unit", "Dx")
        claim_id = await review.submit("Ux")
        task = await review.open_task(claim_id)
        r = await review.patch("Ux", active=False)
        assert r.status_code == 200 and r.json()["active"] is False
        assert (await upserts(review, "Ux"))[-1]["active"] is False
        moved = await review.open_task(claim_id)
        assert moved["id"] == task["id"]
        assert (moved["stage"], moved["org_id"]) == ("authority", review.orgs["Dx"])
        # the deactivated unit's own token is refused outright (not just out of scope)
        assert_problem(await review.decide(task, "Ux"), 403, "org_inactive")
        step = (await review.history(claim_id))[-1]
        assert (step["decision"], step["from_org_id"], step["org_id"]) == (
            "moved",
            review.orgs["Ux"],
            review.orgs["Dx"],
        )
        passed = [e for e in await review.outbox(claim_id) if e.type == "claim.stage_passed"]
        assert passed[-1].data["org_id"] == review.orgs["Dx"]
        # a deactivated unit takes no new claims: they start at its authority
        later = await review.open_task(await review.submit("Ux"))
        assert (later["stage"], later["org_id"]) == ("authority", review.orgs["Dx"])
        assert (await review.decide(moved, "Dx")).status_code == 200
        assert await review.tasks(claim_id, "open") == []

    async def test_a_deactivated_orgs_reviewers_read_and_decide_nothing(
        self, review: Review
    ) -> None:
        """Issue 17, finding 4: a deactivated org's token reads no task, history, queue or
        decisions export and decides nothing (403 ``org_inactive``), though the tasks it saw
        before are still in its table; reactivated, it reviews again."""
        await review.add("Dw", "district", "C")
        await review.add("Uw", "unit", "Dw")
        claim_id = await review.submit("Uw")
        assert (await review.decide(await review.open_task(claim_id), "Uw")).status_code == 200
        audit = await review.open_task(claim_id)
        assert audit["org_id"] == review.orgs["Dw"]
        district, unit = review.reviewer("Dw"), review.reviewer("Uw")
        window = {"from": "2026-01-01", "to": "2026-12-31"}
        reads = [
            (district, "/v1/review-tasks", {}),
            (district, f"/v1/review-tasks/{audit['id']}", {}),
            (district, "/v1/review-queues", {"org_id": review.orgs["Dw"]}),
            (district, "/v1/review-decisions", {"org_id": review.orgs["Dw"], **window}),
            (unit, "/v1/review-tasks", {}),
            (unit, f"/v1/claims/{claim_id}/history", {}),
        ]
        for headers, path, params in reads:
            r = await review.http.get(path, params=params, headers=headers)
            assert r.status_code == 200, (path, r.text)

        assert (await review.patch("Dw", active=False)).status_code == 200
        assert (await review.patch("Uw", active=False)).status_code == 200
        for headers, path, params in reads:
            r = await review.http.get(path, params=params, headers=headers)
            assert_problem(r, 403, "org_inactive")
        task = await review.open_task(claim_id)  # now waiting for the city (unrouted)
        assert_problem(await review.decide(task, "Dw"), 403, "org_inactive")
        r = await review.http.post(
            "/v1/review-tasks/decisions",
            json={"task_ids": [task["id"]], "decision": "approve"},
            headers=district,
        )
        assert_problem(r, 403, "org_inactive")
        assert (await review.open_task(claim_id))["status"] == "open"

        assert (await review.patch("Dw", active=True)).status_code == 200
        for headers, path, params in [reads[0], *reads[2:4]]:  # the audit went to the city
            r = await review.http.get(path, params=params, headers=headers)
            assert r.status_code == 200, (path, r.text)

    async def test_a_deactivated_district_sends_audits_to_the_city(self, review: Review) -> None:
        await review.add("Dy", "district", "C")
        await review.add("Uy", "unit", "Dy")
        waiting = await review.submit("Uy")
        assert (await review.decide(await review.open_task(waiting), "Uy")).status_code == 200
        at_unit = await review.submit("Uy")
        assert (await review.patch("Dy", active=False)).status_code == 200
        audit = await review.open_task(waiting)
        assert (audit["stage"], audit["org_id"]) == ("authority", "unrouted")
        # the unit's approval still works (never a 400): the audit waits for the city
        r = await review.decide(await review.open_task(at_unit), "Uy")
        assert r.status_code == 200, r.text
        unrouted = await review.open_task(at_unit)
        assert (unrouted["stage"], unrouted["org_id"]) == ("authority", "unrouted")
        assert_problem(await review.decide(audit, "Dy"), 403, "org_inactive")
        r = await review.http.get(
            "/v1/review-tasks", params={"org_id": "unrouted", "status": "open"}, headers=review.city
        )
        assert {waiting, at_unit} <= {t["claim_id"] for t in r.json()["items"]}
        r = await review.http.get(
            "/v1/review-tasks", params={"org_id": "unrouted"}, headers=review.reviewer("D2")
        )
        assert r.json()["items"] == []

    async def test_the_city_assigns_unrouted_tasks(self, review: Review) -> None:
        await review.add("Dz", "district", "C")
        await review.add("Uz", "unit", "Dz")
        claim_id = await review.submit("Uz")
        await review.patch("Dz", active=False)
        assert (await review.decide(await review.open_task(claim_id), "Uz")).status_code == 200
        task = await review.open_task(claim_id)
        assert task["org_id"] == "unrouted"

        async def assign(org_id: str, headers: dict[str, str] | None = None) -> Any:
            return await review.http.post(
                f"/v1/review-tasks/{task['id']}/assign",
                json={"org_id": org_id},
                headers=headers or review.city,
            )

        assert_problem(await assign(review.orgs["U1"]), 422, "invalid_assignee")
        assert_problem(await assign("no-such-org"), 422, "invalid_assignee")
        assert_problem(await assign(review.orgs["Dz"]), 422, "org_inactive")
        assert_problem(
            await assign(review.orgs["D2"], review.reviewer("D2")), 403, "role_not_allowed"
        )
        assert (await review.open_task(claim_id))["org_id"] == "unrouted"
        r = await assign(review.orgs["D2"])
        assert r.status_code == 200, r.text
        assert (r.json()["stage"], r.json()["org_id"]) == ("authority", review.orgs["D2"])
        step = (await review.history(claim_id))[-1]
        assert (step["decision"], step["from_org_id"], step["org_id"]) == (
            "assigned",
            "unrouted",
            review.orgs["D2"],
        )
        assert (await review.decide(task, "D2")).status_code == 200
        assert_problem(await assign(review.orgs["D2"]), 409, "task_not_open")
        unit_stage = await review.open_task(await review.submit("U1"))
        r = await review.http.post(
            f"/v1/review-tasks/{unit_stage['id']}/assign",
            json={"org_id": review.orgs["D2"]},
            headers=review.city,
        )
        assert_problem(r, 422, "not_assignable")

    async def test_moving_a_unit_takes_its_waiting_audits_along(self, review: Review) -> None:
        await review.add("Um", "unit", "D1")
        claim_id = await review.submit("Um")
        assert (await review.decide(await review.open_task(claim_id), "Um")).status_code == 200
        assert (await review.open_task(claim_id))["org_id"] == review.orgs["D1"]
        assert (await review.patch("Um", parent_id=review.orgs["D2"])).status_code == 200
        audit = await review.open_task(claim_id)
        assert (audit["stage"], audit["org_id"]) == ("authority", review.orgs["D2"])
        assert_problem(await review.decide(audit, "D1"), 404, "task_not_found")
        assert (await review.decide(audit, "D2")).status_code == 200


# === the routing matrix =====================================================================

# (case, first-stage org label, kind) → (first stage, first org), (second stage org) after the
# first approval; "-" = no first stage (the claim starts at the authority); labels are created
# per case so each runs on its own directory.
MATRIX: list[tuple[str, str, str, tuple[str, str], str | None]] = [
    ("unit under a district", "U", "unit", ("unit", "U"), "D"),
    ("unit under a department", "UP", "unit", ("unit", "UP"), "P"),
    ("agency under a district", "A", "agency", ("unit", "A"), "D"),
    ("unit under a deactivated district", "Ugone", "unit", ("unit", "Ugone"), "unrouted"),
    ("deactivated unit", "Uoff", "unit", ("authority", "D"), None),
    (
        "deactivated unit under a deactivated district",
        "Uoff2",
        "unit",
        ("authority", "unrouted"),
        None,
    ),
    ("org unknown here (no parent, no route)", "nowhere", "unit", ("authority", "unrouted"), None),
    (
        "a district as the affiliation (no authority above)",
        "D",
        "unit",
        ("authority", "unrouted"),
        None,
    ),
]


async def build_matrix_tree(review: Review, tag: str) -> dict[str, str]:
    labels = {
        "D": ("district", "C"),
        "Dgone": ("district", "C"),
        "P": ("department", "C"),
        "U": ("unit", "D"),
        "UP": ("unit", "P"),
        "A": ("agency", "D"),
        "Ugone": ("unit", "Dgone"),
        "Uoff": ("unit", "D"),
        "Uoff2": ("unit", "Dgone"),
    }
    names: dict[str, str] = {}
    for label, (type_, parent) in labels.items():
        name = f"{label}{tag}"
        await review.add(name, type_, names.get(parent, parent))
        names[label] = name
    await review.patch(names["Uoff"], active=False)
    await review.patch(names["Uoff2"], active=False)
    await review.patch(names["Dgone"], active=False)
    return names


def resolve(review: Review, names: dict[str, str], label: str) -> str:
    if label == "unrouted":
        return "unrouted"
    return review.orgs[names[label]]


@pytest.mark.parametrize(("case", "first", "kind", "stage1", "authority"), MATRIX)
async def test_routing_matrix(
    review: Review,
    case: str,
    first: str,
    kind: str,
    stage1: tuple[str, str],
    authority: str | None,
) -> None:
    names = await build_matrix_tree(review, uuid.uuid4().hex[:6])
    org_ref = review.orgs[names[first]] if first in names else f"unknown-{uuid.uuid4()}"
    claim_id = await review.submit(org_ref, kind=kind)
    task = await review.open_task(claim_id)
    assert (task["stage"], task["org_id"]) == (stage1[0], resolve(review, names, stage1[1])), case
    if authority is None:
        return
    r = await review.decide(task, names[first])
    assert r.status_code == 200, r.text  # never a 400 for want of a route
    audit = await review.open_task(claim_id)
    assert (audit["stage"], audit["org_id"]) == ("authority", resolve(review, names, authority))


@pytest.mark.parametrize("stage", ["unit", "authority"])
@pytest.mark.parametrize("to", ["unit under another district", "unit under a department", "agency"])
async def test_routing_matrix_transferred_person(review: Review, stage: str, to: str) -> None:
    """A person moves (调动) while their claim waits at ``stage``: it follows them."""
    names = await build_matrix_tree(review, uuid.uuid4().hex[:6])
    target = {"unit under another district": "U2", "unit under a department": "UP", "agency": "A1"}[
        to
    ]
    target_authority = {"U2": "D2", "UP": "P", "A1": "D1"}[target]
    person_id = f"person-{uuid.uuid4()}"
    await review.person_event(person_id, names["U"], registered=True)
    claim_id = await review.submit(names["U"], person_id=person_id)
    if stage == "authority":
        assert (
            await review.decide(await review.open_task(claim_id), names["U"])
        ).status_code == 200
    before = await review.open_task(claim_id)
    await review.person_event(person_id, target, kind="agency" if target == "A1" else "unit")
    after = await review.open_task(claim_id)
    expected = review.orgs[target if stage == "unit" else target_authority]
    assert (after["id"], after["stage"], after["org_id"]) == (before["id"], stage, expected)
    old = names["U"] if stage == "unit" else names["D"]
    assert_problem(await review.decide(after, old), 404, "task_not_found")
    step = (await review.history(claim_id))[-1]
    assert (step["decision"], step["from_org_id"], step["org_id"]) == (
        "moved",
        before["org_id"],
        expected,
    )
    r = await review.decide(after, target if stage == "unit" else target_authority)
    assert r.status_code == 200, r.text


async def test_a_transfer_seen_before_the_claim_routes_it_to_the_new_unit(review: Review) -> None:
    """Events of a person and of a claim travel on different keys: the transfer may arrive first."""
    person_id = f"person-{uuid.uuid4()}"
    await review.person_event(person_id, "U1", registered=True)
    await review.person_event(person_id, "U2")
    claim_id = await review.submit("U1", person_id=person_id)  # submitted before the move
    task = await review.open_task(claim_id)
    assert task["org_id"] == review.orgs["U2"]
    # a registration delivered late does not undo the transfer
    await review.person_event(person_id, "U1", registered=True)
    later = await review.open_task(await review.submit("U1", person_id=person_id))
    assert later["org_id"] == review.orgs["U2"]
