"""The README's walk-through as code: orgs → person → evidence → training claim → unit approval →
district approval → approved claim, transcript hours, and the record on the province."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ce.demo import training_claim
from tests.e2e.stack import Stack
from tests.support import eventually

T = TypeVar("T")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
ID_NUMBER = "11010519491231002X"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    district_id: str
    unit_id: str
    person_id: str
    unit_admin: str
    district_admin: str
    personnel: str


def setup_world(
    stack: Stack, http: httpx.Client, id_number: str = ID_NUMBER, suffix: str = ""
) -> World:
    city = bearer(stack.token("city_admin"))
    review = stack.url("review")
    district = http.post(
        f"{review}/v1/orgs",
        headers=city,
        json={"code": f"370402{suffix}", "name": "市中区人社局", "type": "district"},
    )
    assert district.status_code == 201, district.text
    unit = http.post(
        f"{review}/v1/orgs",
        headers=city,
        json={
            "code": f"U001{suffix}",
            "name": "枣庄市立医院",
            "type": "unit",
            "parent_id": district.json()["id"],
        },
    )
    assert unit.status_code == 201, unit.text
    unit_id = unit.json()["id"]
    unit_admin = stack.token("unit_admin", org_id=unit_id)

    person_id = register_person(stack, http, unit_admin, unit_id, id_number)
    return World(
        district_id=district.json()["id"],
        unit_id=unit_id,
        person_id=person_id,
        unit_admin=unit_admin,
        district_admin=stack.token("district_admin", org_id=district.json()["id"]),
        personnel=stack.token("personnel", person_id=person_id),
    )


def register_person(
    stack: Stack, http: httpx.Client, unit_admin: str, unit_id: str, id_number: str
) -> str:
    """Register 张三 in the unit (claims); returns the person id."""

    def register() -> httpx.Response | None:
        # the org reaches the claims service as an event: retry while it is on its way
        r = http.post(
            f"{stack.url('claims')}/v1/persons",
            headers=bearer(unit_admin),
            json={
                "id_number": id_number,
                "name": "张三",
                "affiliation": {"kind": "unit", "org_id": unit_id},
            },
        )
        return None if r.status_code == 422 and r.json()["code"] == "unknown_org" else r

    person = eventually(register, what="org replica in claims")
    assert person.status_code == 201, person.text
    return str(person.json()["id"])


def submit_training(
    stack: Stack, http: httpx.Client, world: World, title: str, pdf: bytes = PDF, **extra: Any
) -> dict[str, Any]:
    claims = stack.url("claims")
    evidence = http.post(
        f"{claims}/v1/evidence",
        headers=bearer(world.personnel),
        files={"file": ("certificate.pdf", pdf, "application/pdf")},
    )
    assert evidence.status_code == 201, evidence.text
    body = {**training_claim(world.person_id, title, evidence.json()["id"]), **extra}
    claim = http.post(f"{claims}/v1/claims", headers=bearer(world.personnel), json=body)
    assert claim.status_code == 201, claim.text
    return dict(claim.json())


def open_task(stack: Stack, http: httpx.Client, token: str, claim_id: str, stage: str) -> str:
    def probe() -> str | None:
        r = http.get(
            f"{stack.url('review')}/v1/review-tasks",
            headers=bearer(token),
            params={"status": "open", "stage": stage, "claim_id": claim_id},
        )
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        return items[0]["id"] if items else None

    return eventually(probe, what=f"{stage} task for {claim_id}")


def decide(stack: Stack, http: httpx.Client, token: str, task_id: str, decision: str) -> None:
    r = http.post(
        f"{stack.url('review')}/v1/review-tasks/{task_id}/decision",
        headers=bearer(token),
        json={"decision": decision, **({"reason": "证书不清晰"} if decision == "reject" else {})},
    )
    assert r.status_code == 200, r.text


def walk_through(stack: Stack) -> World:
    """The whole walk-through with its assertions; returns the world it built."""
    with stack.client(timeout=10) as http:
        world = setup_world(stack, http)
        claim = submit_training(stack, http, world, "急诊医学新进展培训班")
        assert claim["status"] == "in_review" and claim["stage"] == "unit"
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 16.0}]

        task = open_task(stack, http, world.unit_admin, claim["id"], "unit")
        # the reviewer sees what to check, and can open the certificate file itself
        [item] = http.get(
            f"{stack.url('review')}/v1/review-tasks",
            params={"claim_id": claim["id"]},
            headers=bearer(world.unit_admin),
        ).json()["items"]
        assert item["evidence_ids"] == claim["evidence_ids"]
        assert item["references"] == {"reference_no": "鲁卫继备〔2026〕15号"}
        file = http.get(
            f"{stack.url('claims')}/v1/evidence/{item['evidence_ids'][0]}/content",
            headers=bearer(world.unit_admin),
        )
        assert file.status_code == 200 and file.content == PDF
        # the district cannot decide the unit's task: outside its scope
        r = http.post(
            f"{stack.url('review')}/v1/review-tasks/{task}/decision",
            headers=bearer(world.district_admin),
            json={"decision": "approve"},
        )
        assert r.status_code == 404, r.text
        decide(stack, http, world.unit_admin, task, "approve")
        task2 = open_task(stack, http, world.district_admin, claim["id"], "authority")
        decide(stack, http, world.district_admin, task2, "approve")

        claims = stack.url("claims")
        headers = bearer(world.personnel)

        def approved() -> dict[str, Any] | None:
            c = http.get(f"{claims}/v1/claims/{claim['id']}", headers=headers).json()
            return c if c["status"] == "approved" else None

        final = eventually(approved, what="claim approved")
        assert final["credits"] == [{"subject": "professional", "hours": 16.0}]
        transcript = http.get(
            f"{claims}/v1/persons/{world.person_id}/transcripts/2026", headers=headers
        ).json()
        assert transcript["credited"] == {"public": 0.0, "professional": 16.0, "total": 16.0}
        assert transcript["compliant"] is False
        assert [e["ref"] for e in transcript["entries"]] == [claim["id"]]

        def on_province() -> dict[str, Any] | None:
            r = http.get(
                f"{stack.url('province')}/province/v1/persons/{ID_NUMBER}/hours",
                params={"year": 2026},
            )
            body = r.json()
            return body if r.status_code == 200 and body["records"] else None

        province = eventually(on_province, what="record on the province")
        assert province["professional"] == 16.0 and len(province["records"]) == 1
        eventually(
            lambda: (
                http.get(f"{claims}/v1/claims/{claim['id']}", headers=headers).json()["sync_status"]
                == "registered"
            ),
            what="sync status registered",
        )
        history = http.get(
            f"{stack.url('review')}/v1/claims/{claim['id']}/history",
            headers=bearer(world.district_admin),
        ).json()
        assert [s["decision"] for s in history["steps"]] == ["submitted", "approve", "approve"]
        city_platform_records(stack, http, world)
    return world


def city_platform_records(stack: Stack, http: httpx.Client, world: World) -> None:
    """The city e-learning platform pushes public-course records: no declaration, no review;
    they reach the transcript and the province once, however often they are pushed."""
    record = {
        "record_id": "zzzj-2026-000001",
        "id_number": ID_NUMBER,
        "year": 2026,
        "subject": "public",
        "hours": 30,
        "course": "公需科目：人工智能与数字技术",
        "completed_at": "2026-06-01T10:00:00+08:00",
    }
    bad = {**record, "record_id": "zzzj-2026-000002", "id_number": "110105194912310021"}
    batch = {"records": [record, record, bad]}
    system = bearer(stack.token("system"))
    r = http.post(f"{stack.url('sync')}/v1/learning-records", headers=system, json=batch)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert [x["record_id"] for x in body["rejected"]] == ["zzzj-2026-000002"]
    again = http.post(f"{stack.url('sync')}/v1/learning-records", headers=system, json=batch)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 2)
    forbidden = http.post(
        f"{stack.url('sync')}/v1/learning-records", headers=bearer(world.unit_admin), json=batch
    )
    assert forbidden.status_code == 403

    def transcript() -> dict[str, Any] | None:
        t = http.get(
            f"{stack.url('claims')}/v1/persons/{world.person_id}/transcripts/2026",
            headers=bearer(world.personnel),
        ).json()
        return t if t["credited"]["public"] == 30 else None

    t = eventually(transcript, what="city-platform hours on the transcript")
    assert [e["source"] for e in t["entries"]] == ["claim", "city_platform"]

    def on_province() -> dict[str, Any] | None:
        p = http.get(
            f"{stack.url('province')}/province/v1/persons/{ID_NUMBER}/hours",
            params={"year": 2026},
        ).json()
        return p if p["public"] == 30 else None

    province = eventually(on_province, what="city-platform record on the province")
    assert province["professional"] == 16 and len(province["records"]) == 2
    plan_and_feed(stack, http, world)
    reconcile(stack, http)


def plan_and_feed(stack: Stack, http: httpx.Client, world: World) -> None:
    """The what-if planner says what is still missing and how to fill it; the mobile app's
    feed shows what happened to the claim, newest first, and costs a 304 while unchanged."""
    claims = stack.url("claims")
    me = bearer(world.personnel)
    plan = http.get(f"{claims}/v1/persons/{world.person_id}/plan", params={"year": 2026},
                    headers=me)  # fmt: skip
    assert plan.status_code == 200, plan.text
    professional = plan.json()["subjects"]["professional"]
    assert (professional["credited"], professional["still_needed"]) == (16.0, 44.0)
    assert plan.json()["subjects"]["public"]["still_needed"] == 0.0
    [suggestion] = plan.json()["suggestions"]  # public is complete: nothing to suggest
    assert suggestion["subject"] == "professional"
    assert sum(step["hours"] for step in suggestion["plan"]) >= 44.0
    assert plan.json()["cap_groups"]["study"]["room"] == 40.0

    def feed() -> httpx.Response | None:
        r = http.get(f"{claims}/v1/me/notifications", headers=me)
        kinds = [n["kind"] for n in r.json()["items"]]
        return r if r.status_code == 200 and "registered_at_province" in kinds else None

    first = eventually(feed, what="registered at the province, in the feed")
    kinds = [n["kind"] for n in first.json()["items"]]
    assert kinds == ["registered_at_province", "claim_approved", "stage_passed", "claim_submitted"]
    unchanged = http.get(f"{claims}/v1/me/notifications",
                         headers={**me, "If-None-Match": first.headers["ETag"]})  # fmt: skip
    assert unchanged.status_code == 304
    read = http.post(f"{claims}/v1/me/notifications/read", headers=me)
    assert read.json() == {"marked": 4, "unread": 0}


def reconcile(stack: Stack, http: httpx.Client) -> None:
    """Our registered totals equal the province's; a record that reached the province some
    other way shows up as a mismatch, masked."""
    city = bearer(stack.token("city_admin"))
    sync = stack.url("sync")

    def clean() -> dict[str, Any] | None:
        body = http.post(f"{sync}/v1/reconciliations", headers=city, json={"year": 2026}).json()
        return body if body["mismatched"] == [] else None

    body = eventually(clean, what="a clean reconciliation")
    assert body["checked"] == body["matched"] == 1
    stray = {
        "record_id": "elsewhere-1",
        "id_number": "110105195001010012",  # someone we never registered anything for
        "name": "李四",
        "year": 2026,
        "subject": "public",
        "hours": 4,
        "category": "training",
        "title": "外地登记",
        "source": "claim",
        "completed_at": "2026-05-01T00:00:00Z",
    }
    r = http.post(f"{stack.url('province')}/province/v1/records", json={"records": [stray]})
    assert r.status_code == 200, r.text
    body = http.post(f"{sync}/v1/reconciliations", headers=city, json={"year": 2026}).json()
    assert (body["checked"], body["matched"]) == (2, 1)
    [mismatch] = body["mismatched"]
    assert mismatch["id_number_masked"] == "110105********0012"
    assert mismatch["ours"] == {"public": 0.0, "professional": 0.0}
    assert mismatch["province"] == {"public": 4.0, "professional": 0.0}
    denied = http.post(
        f"{sync}/v1/reconciliations", headers=bearer(stack.token("ops")), json={"year": 1999}
    )
    assert denied.status_code == 422
    # the e-learning platform's integration pushes records; operations are not its business
    refused = http.post(
        f"{sync}/v1/reconciliations", headers=bearer(stack.token("system")), json={"year": 2026}
    )
    assert refused.status_code == 403
