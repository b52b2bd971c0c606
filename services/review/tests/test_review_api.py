"""The review API on a real app (SQLite, lifespan, outbox relay, consumer): the org directory's
rules, routing of submitted claims to the responsible reviewers (分级审验), scope, decisions
single and bulk, the append-only history and the events written to the outbox.

Claims reach review as ``claim.submitted`` envelopes on ``claims.events`` (the embedded log).
"""

from __future__ import annotations

import uuid

import pytest

from libs.common.events import Affiliation, ClaimSubmitted, ClaimWithdrawn
from services.review.tests.support import Review, code
from tests.support import assert_problem, until

# === orgs ===================================================================================


class TestOrgs:
    async def test_create_and_read(self, review: Review) -> None:
        body = {
            "code": code(),
            "name": "枣庄市立医院",
            "type": "unit",
            "parent_id": review.orgs["D1"],
        }
        r = await review.http.post("/v1/orgs", json=body, headers=review.city)
        assert r.status_code == 201, r.text
        org = r.json()
        assert {k: org[k] for k in body} == body and org["id"]
        got = await review.http.get(
            f"/v1/orgs/{org['id']}", headers=review.auth("unit_admin", "U1")
        )
        # the org as created, with its place in the tree
        assert {k: v for k, v in got.json().items() if k not in ("ancestors", "children")} == org
        assert [a["id"] for a in got.json()["ancestors"]] == [review.orgs["C"], review.orgs["D1"]]
        listed = await review.http.get(
            "/v1/orgs", params={"type": "unit", "parent_id": review.orgs["D1"]}, headers=review.city
        )
        ids = [o["id"] for o in listed.json()["items"]]
        assert org["id"] in ids and review.orgs["U1"] in ids and review.orgs["U2"] not in ids
        [event] = await review.outbox(org["id"])
        assert event.type == "org.upserted" and event.data["parent_id"] == review.orgs["D1"]

    @pytest.mark.parametrize(
        ("type_", "parent"),
        [
            ("district", None),
            ("district", "C"),
            ("department", "C"),
            ("unit", "P"),
            ("agency", "D2"),
            ("provider", "P"),
            ("exam_center", "C"),
            ("city", None),
        ],
    )
    async def test_allowed_parents(self, review: Review, type_: str, parent: str | None) -> None:
        r = await review.create_org(type_, review.orgs[parent] if parent else None)
        assert r.status_code == 201, r.text

    @pytest.mark.parametrize(
        ("type_", "parent"),
        [
            ("unit", None),
            ("unit", "U1"),
            ("unit", "C"),
            ("unit", "A1"),
            ("agency", "P"),
            ("agency", None),
            ("district", "D1"),
            ("department", "P"),
            ("city", "C"),
            ("exam_center", "D1"),
        ],
    )
    async def test_invalid_org_parent(self, review: Review, type_: str, parent: str | None) -> None:
        r = await review.create_org(type_, review.orgs[parent] if parent else None)
        problem = assert_problem(r, 422, "invalid_org_parent")
        assert type_ in problem["detail"]

    async def test_invalid_org_type(self, review: Review) -> None:
        assert_problem(await review.create_org("hospital"), 422, "invalid_org_type")

    async def test_unknown_parent(self, review: Review) -> None:
        assert_problem(await review.create_org("unit", "no-such-org"), 422, "unknown_parent_org")

    async def test_duplicate_code_is_409(self, review: Review) -> None:
        body = {"code": code(), "name": "x", "type": "district"}
        assert (
            await review.http.post("/v1/orgs", json=body, headers=review.city)
        ).status_code == 201
        r = await review.http.post("/v1/orgs", json=body, headers=review.city)
        assert_problem(r, 409, "duplicate_org_code")
        listed = await review.http.get("/v1/orgs", params={"type": "district"}, headers=review.city)
        assert [o["code"] for o in listed.json()["items"]].count(body["code"]) == 1

    async def test_lists_page_with_a_cursor(self, review: Review) -> None:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"type": "unit", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await review.http.get("/v1/orgs", params=params, headers=review.city)).json()
            assert len(page["items"]) <= 2
            seen += [o["id"] for o in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        everything = await review.http.get(
            "/v1/orgs", params={"type": "unit", "limit": 500}, headers=review.city
        )
        assert seen == [o["id"] for o in everything.json()["items"]] and len(seen) >= 4
        assert len(set(seen)) == len(seen)
        bad = await review.http.get("/v1/orgs", params={"cursor": "bm9wZQ"}, headers=review.city)
        assert_problem(bad, 400, "invalid_cursor")

    @pytest.mark.parametrize(
        ("role", "org"),
        [
            ("unit_admin", "U1"),
            ("district_admin", "D1"),
            ("department_admin", "P"),
            ("agency_admin", "A1"),
            ("personnel", None),
        ],
    )
    async def test_only_the_city_creates_orgs(
        self, review: Review, role: str, org: str | None
    ) -> None:
        headers = review.auth(role, org, person_id="p" if role == "personnel" else None)
        body = {"code": code(), "name": "x", "type": "district"}
        r = await review.http.post("/v1/orgs", json=body, headers=headers)
        assert_problem(r, 403, "role_not_allowed")

    async def test_missing_token_is_401(self, review: Review) -> None:
        r = await review.http.post("/v1/orgs", json={"code": code(), "name": "x", "type": "city"})
        assert_problem(r, 401, "missing_token")
        assert_problem(await review.http.get("/v1/review-tasks"), 401, "missing_token")

    async def test_unknown_org_is_404(self, review: Review) -> None:
        r = await review.http.get("/v1/orgs/nope", headers=review.city)
        assert_problem(r, 404, "org_not_found")


# === routing ================================================================================


class TestRouting:
    @pytest.mark.parametrize(
        ("first", "kind", "authority"),
        [("U1", "unit", "D1"), ("UP", "unit", "P"), ("A1", "agency", "D1")],
        ids=["district-unit", "city-direct-unit", "agency-freelancer"],
    )
    async def test_two_stages(self, review: Review, first: str, kind: str, authority: str) -> None:
        claim_id = await review.submit(first, kind=kind)
        task = await review.open_task(claim_id)
        assert (task["stage"], task["org_id"], task["status"]) == (
            "unit",
            review.orgs[first],
            "open",
        )
        assert task["person"]["id_number_masked"] == "370402********0012"
        assert task["requested_hours"] == 16 and task["verified_evidence"] is True

        r = await review.decide(task, first)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["decision"]) == ("decided", "approve")
        audit = await review.open_task(claim_id)
        assert (audit["stage"], audit["org_id"]) == ("authority", review.orgs[authority])
        assert audit["person"] == task["person"]

        r = await review.decide(audit, authority)
        assert r.status_code == 200, r.text
        assert await review.tasks(claim_id, "open") == []
        events = await review.outbox(claim_id)
        assert [e.type for e in events] == ["claim.stage_passed", "claim.approved"]
        assert events[0].data["org_id"] == review.orgs[authority]
        assert events[0].data["next_stage"] == "authority"
        assert events[1].data["org_id"] == review.orgs[authority]
        steps = await review.history(claim_id)
        assert [(s["stage"], s["decision"]) for s in steps] == [
            ("unit", "submitted"),
            ("unit", "approve"),
            ("authority", "approve"),
        ]
        assert [s["org_id"] for s in steps] == [review.orgs[o] for o in (first, first, authority)]

    async def test_reject_needs_a_reason(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        task = await review.open_task(claim_id)
        for reason in (None, "   "):
            r = await review.decide(task, "U1", "reject", reason)
            problem = assert_problem(r, 422, "reason_required")
            assert "reason" in problem["detail"]
        assert (await review.open_task(claim_id))["id"] == task["id"]
        assert await review.outbox(claim_id) == []

    async def test_rejection_then_a_new_revision(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        task = await review.open_task(claim_id)
        r = await review.decide(task, "U1", "reject", "证书照片不清晰")
        assert r.status_code == 200 and r.json()["reason"] == "证书照片不清晰"
        [event] = await review.outbox(claim_id)
        assert event.type == "claim.rejected"
        assert (event.data["stage"], event.data["reason"]) == ("unit", "证书照片不清晰")
        assert await review.tasks(claim_id, "open") == []
        await review.submit("U1", revision=2, claim_id=claim_id)
        task2 = await review.open_task(claim_id)
        assert (task2["revision"], task2["stage"]) == (2, "unit")
        steps = await review.history(claim_id)
        assert [(s["revision"], s["decision"], s["reason"]) for s in steps] == [
            (1, "submitted", None),
            (1, "reject", "证书照片不清晰"),
            (2, "submitted", None),
        ]
        assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)

    async def test_a_new_revision_cancels_the_open_task(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        first = await review.open_task(claim_id)
        await review.submit("U1", revision=2, claim_id=claim_id)
        statuses = {t["id"]: t["status"] for t in await review.tasks(claim_id)}
        assert statuses[first["id"]] == "cancelled"
        assert_problem(await review.decide(first, "U1"), 409, "task_not_open")

    async def test_withdrawal_cancels_and_is_in_the_history(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        task = await review.open_task(claim_id)
        envelope = ClaimWithdrawn(claim_id=claim_id, revision=1, person_id="p").envelope(
            source="claims", subject=claim_id, correlation_id=None
        )
        await review.publish(envelope)

        async def cancelled() -> bool:
            return [t["status"] for t in await review.tasks(claim_id)] == ["cancelled"]

        await until(cancelled)
        assert [s["decision"] for s in await review.history(claim_id)] == ["submitted", "withdrawn"]
        assert_problem(await review.decide(task, "U1"), 409, "task_not_open")

    async def test_the_same_submission_twice_routes_once(self, review: Review) -> None:
        claim_id = str(uuid.uuid4())
        envelope = ClaimSubmitted(
            claim_id=claim_id,
            revision=1,
            person_id="p",
            person_name="张三",
            id_number_masked="370402********0012",
            affiliation=Affiliation(kind="unit", org_id=review.orgs["U2"]),
            year=2026,
            category="study",
            subject="professional",
            title="t",
            requested_hours=4,
            expected_credits=[],
        ).envelope(source="claims", subject=claim_id, correlation_id=None)
        skipped_before = await review.skipped("claim.submitted")
        await review.publish(envelope)
        await review.publish(envelope)  # redelivered

        async def both_seen() -> bool:
            return await review.skipped("claim.submitted") > skipped_before

        await until(both_seen)
        assert len(await review.tasks(claim_id)) == 1
        assert [s["decision"] for s in await review.history(claim_id)] == ["submitted"]


# === scope and decisions ====================================================================


class TestScope:
    async def test_each_reviewer_sees_its_own_tasks(self, review: Review) -> None:
        mine = await review.submit("U1")
        other_unit = await review.submit("U1b")
        other_district = await review.submit("U2")
        city_direct = await review.submit("UP")
        freelancer = await review.submit("A1", kind="agency")
        ids = (mine, other_unit, other_district, city_direct, freelancer)

        async def visible(headers: dict[str, str], **params: str) -> set[str]:
            r = await review.http.get("/v1/review-tasks", params=params, headers=headers)
            assert r.status_code == 200, r.text
            return {t["claim_id"] for t in r.json()["items"]} & set(ids)

        assert await visible(review.reviewer("U1")) == {mine}
        assert await visible(review.reviewer("U1b")) == {other_unit}
        assert await visible(review.reviewer("UP")) == {city_direct}
        assert await visible(review.reviewer("A1")) == {freelancer}
        assert await visible(review.city) == set(ids)
        # the authority sees nothing until the first stage passes
        assert await visible(review.reviewer("D1")) == set()
        for claim_id, org in ((mine, "U1"), (freelancer, "A1")):
            r = await review.decide(await review.open_task(claim_id), org)
            assert r.status_code == 200, r.text
        assert await visible(review.reviewer("D1")) == {mine, freelancer}
        assert await visible(review.reviewer("D1"), stage="authority", status="open") == {
            mine,
            freelancer,
        }
        assert await visible(review.reviewer("D2")) == set()
        assert await visible(review.reviewer("U1"), status="decided") == {mine}
        assert await visible(review.reviewer("U1"), status="open") == set()
        # roles without review scope, and a role that does not match its org's type
        for headers in (
            review.auth("personnel", person_id="p"),
            review.auth("system"),  # the e-learning platform's integration reviews nothing
            review.auth("ops"),
            review.auth("provider", "C"),
            review.auth("exam_center", "C"),
            review.auth("unit_admin", "D1"),
            review.auth("district_admin", "U1"),
        ):
            assert await visible(headers) == set()

    async def test_decide_outside_scope_is_404(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        task = await review.open_task(claim_id)
        outsiders = [
            review.reviewer("U1b"),
            review.reviewer("D1"),  # the authority does not decide the unit stage
            review.auth("unit_admin", "D1"),
            review.city,  # the city oversees but does not decide in place of the reviewer
            review.auth("system"),
            review.auth("personnel", person_id="p"),
        ]
        for headers in outsiders:
            r = await review.http.post(
                f"/v1/review-tasks/{task['id']}/decision",
                json={"decision": "approve"},
                headers=headers,
            )
            assert_problem(r, 404, "task_not_found")
        r = await review.http.post(
            "/v1/review-tasks/nope/decision",
            json={"decision": "approve"},
            headers=review.reviewer("U1"),
        )
        assert_problem(r, 404, "task_not_found")
        assert (await review.open_task(claim_id))["id"] == task["id"]
        assert await review.outbox(claim_id) == []

    async def test_a_decided_task_is_409(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        task = await review.open_task(claim_id)
        assert (await review.decide(task, "U1")).status_code == 200
        for decision, reason in (("approve", None), ("reject", "again")):
            r = await review.decide(task, "U1", decision, reason)
            assert_problem(r, 409, "task_not_open")
        assert [e.type for e in await review.outbox(claim_id)] == ["claim.stage_passed"]
        assert [s["decision"] for s in await review.history(claim_id)] == ["submitted", "approve"]

    async def test_invalid_decision_is_422(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        task = await review.open_task(claim_id)
        r = await review.http.post(
            f"/v1/review-tasks/{task['id']}/decision",
            json={"decision": "maybe"},
            headers=review.reviewer("U1"),
        )
        assert_problem(r, 422, "validation_error")

    async def test_history_scope(self, review: Review) -> None:
        claim_id = await review.submit("U1")
        r = await review.http.get(f"/v1/claims/{claim_id}/history", headers=review.reviewer("U1"))
        assert r.status_code == 200
        for headers in (review.reviewer("U1b"), review.reviewer("D2"), review.reviewer("D1")):
            r = await review.http.get(f"/v1/claims/{claim_id}/history", headers=headers)
            assert_problem(r, 404, "claim_not_found")
        # the person themselves (the actor of the submission)
        person_id = f"person-{claim_id[:8]}"
        r = await review.http.get(
            f"/v1/claims/{claim_id}/history", headers=review.auth("personnel", person_id=person_id)
        )
        assert r.status_code == 200
        r = await review.http.get(
            f"/v1/claims/{claim_id}/history", headers=review.auth("personnel", person_id="other")
        )
        assert_problem(r, 404, "claim_not_found")


class TestBulk:
    async def test_per_item_results(self, review: Review) -> None:
        ok1 = await review.open_task(await review.submit("U1"))
        ok2 = await review.open_task(await review.submit("U1"))
        done = await review.open_task(await review.submit("U1"))
        assert (await review.decide(done, "U1")).status_code == 200
        foreign = await review.open_task(await review.submit("U2"))
        ids = [ok1["id"], done["id"], foreign["id"], "nope", ok2["id"], ok1["id"]]
        r = await review.http.post(
            "/v1/review-tasks/decisions",
            json={"task_ids": ids, "decision": "approve"},
            headers=review.reviewer("U1"),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        results = {x["task_id"]: x for x in body["results"]}
        assert [x["task_id"] for x in body["results"]] == list(dict.fromkeys(ids))
        assert results[ok1["id"]]["status"] == 200 and results[ok2["id"]]["status"] == 200
        assert results[ok1["id"]]["task"]["decision"] == "approve"
        assert (results[done["id"]]["status"], results[done["id"]]["code"]) == (
            409,
            "task_not_open",
        )
        assert (results[foreign["id"]]["status"], results[foreign["id"]]["code"]) == (
            404,
            "task_not_found",
        )
        assert results["nope"]["status"] == 404
        assert (body["decided"], body["failed"]) == (2, 3)
        # each decided task moved on to the district; the foreign one is untouched
        for task in (ok1, ok2):
            audit = await review.open_task(task["claim_id"])
            assert (audit["stage"], audit["org_id"]) == ("authority", review.orgs["D1"])
        assert (await review.open_task(foreign["claim_id"]))["id"] == foreign["id"]

    async def test_bulk_reject_needs_a_reason_per_item(self, review: Review) -> None:
        task = await review.open_task(await review.submit("U1"))
        r = await review.http.post(
            "/v1/review-tasks/decisions",
            json={"task_ids": [task["id"]], "decision": "reject"},
            headers=review.reviewer("U1"),
        )
        assert r.status_code == 200
        [result] = r.json()["results"]
        assert (result["status"], result["code"]) == (422, "reason_required")
        r = await review.http.post(
            "/v1/review-tasks/decisions",
            json={"task_ids": [task["id"]], "decision": "reject", "reason": "材料不全"},
            headers=review.reviewer("U1"),
        )
        assert r.json()["decided"] == 1
        [event] = await review.outbox(task["claim_id"])
        assert event.type == "claim.rejected" and event.data["reason"] == "材料不全"

    async def test_bulk_approval_of_verified_claims_at_the_authority(self, review: Review) -> None:
        claims = [await review.submit("U1b") for _ in range(3)]
        for claim_id in claims:
            assert (await review.decide(await review.open_task(claim_id), "U1b")).status_code == 200
        audits = [await review.open_task(c) for c in claims]
        assert all(a["verified_evidence"] for a in audits)
        r = await review.http.post(
            "/v1/review-tasks/decisions",
            json={"task_ids": [a["id"] for a in audits], "decision": "approve"},
            headers=review.reviewer("D1"),
        )
        assert r.json()["decided"] == 3
        for claim_id in claims:
            types = [e.type for e in await review.outbox(claim_id)]
            assert types == ["claim.stage_passed", "claim.approved"]
            steps = await review.history(claim_id)
            assert [s["decision"] for s in steps] == ["submitted", "approve", "approve"]
            assert steps[-1]["actor"].startswith("district_admin")
