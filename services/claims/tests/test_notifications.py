"""The personnel feed (GET /v1/me/notifications, POST /v1/me/notifications/read) on a real
claims app: every kind of line written by the change it reports (the submission, the review
and registry events through the inbox, the reminders), newest first, cursor-paged, marked read,
answered 304 while unchanged, each person's own only, and exactly once per event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.common.events import (
    CertificateIssued,
    CertificateRevoked,
    ClaimStagePassed,
    SyncRecordRegistered,
    SyncRecordVoided,
    SyncRecordVoidFailed,
    topic_of,
)
from services.claims.tests.harness import DATABASES, Person, Stack, claims_stack, database_url_for
from tests.support import assert_problem

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

CODE = "role_not_allowed"
REVIEW, REGISTRY, SYNC = topic_of("review"), topic_of("registry"), topic_of("sync")


@pytest.fixture(scope="module", params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    return database_url_for(request, "claims_feed")


@pytest.fixture(scope="module")
async def stack(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("notifications"), database_url) as s:
        s.orgs["unit"] = await s.add_org("unit")
        yield s


@pytest.fixture
async def person(stack: Stack) -> Person:
    return await stack.register(stack.orgs["unit"])


async def feed(stack: Stack, person: Person, **params: Any) -> dict[str, Any]:
    response = await stack.http.get("/v1/me/notifications", params=params, headers=person.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def training(stack: Stack, person: Person, title: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "year": 2026,
        "category": "training",
        "title": title,
        "hours": 8,
        "start_date": "2026-11-02",
        "end_date": "2026-11-02",
        "reference_no": "鲁卫继备〔2026〕15号",
        "evidence_ids": [await stack.upload(person)],
        **extra,
    }
    return await stack.submit(person, body)


async def test_the_life_of_a_claim_in_the_feed(stack: Stack, person: Person) -> None:
    claim = await training(stack, person, "急诊医学新进展")
    await stack.publish(
        REVIEW,
        ClaimStagePassed(
            claim_id=claim["id"], revision=1, stage="unit", next_stage="authority", org_id="u"
        ),
        subject=claim["id"],
    )
    await stack.approve(claim)
    await stack.publish(
        SYNC,
        SyncRecordRegistered(
            record_id=f"claim:{claim['id']}", claim_id=claim["id"], province_receipt="SD-1"
        ),
        subject=claim["id"],
    )
    # on a day of its own: with the first it would break the person's 8 hours a day (issue 20)
    other = await training(
        stack, person, "院感防控", start_date="2026-11-03", end_date="2026-11-03"
    )
    await stack.reject(other, "证书照片不清晰")
    page = await feed(stack, person)
    kinds = [n["kind"] for n in page["items"]]
    assert kinds == [  # newest first
        "claim_rejected",
        "claim_submitted",
        "registered_at_province",
        "claim_approved",
        "stage_passed",
        "claim_submitted",
    ]
    assert page["unread"] == 6 and page["next_cursor"] is None
    rejected, approved = page["items"][0], page["items"][3]
    assert rejected["claim_id"] == other["id"] and "证书照片不清晰" in rejected["message"]
    assert rejected["data"]["reason"] == "证书照片不清晰"
    assert "8 h professional credited" in approved["message"]
    assert approved["data"]["credits"] == [{"subject": "professional", "hours": 8.0}]
    assert not any(n["read"] for n in page["items"])


async def test_cursor_pages_cover_the_feed_once(stack: Stack, person: Person) -> None:
    for i in range(5):
        await training(stack, person, f"培训{i}", end_date=f"2026-11-{i + 2:02d}",
                       start_date=f"2026-11-{i + 2:02d}")  # fmt: skip
    seen, cursor, pages = [], None, 0
    while True:
        page = await feed(stack, person, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [n["message"] for n in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 5
    assert [m.split("」")[0] for m in seen] == [f"「培训{i}" for i in (4, 3, 2, 1, 0)]
    bad = await stack.http.get(
        "/v1/me/notifications", params={"cursor": "not-a-cursor"}, headers=person.auth
    )
    assert_problem(bad, 400, "invalid_cursor")


async def test_etag_answers_304_until_something_changes(stack: Stack, person: Person) -> None:
    await training(stack, person, "心电图判读")
    first = await stack.http.get("/v1/me/notifications", headers=person.auth)
    etag = first.headers["ETag"]
    again = await stack.http.get(
        "/v1/me/notifications", headers={**person.auth, "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    # marking read changes the page, so the validator
    [line] = first.json()["items"]
    marked = await stack.http.post(
        "/v1/me/notifications/read", json={"ids": [line["id"]]}, headers=person.auth
    )
    assert marked.status_code == 200 and marked.json() == {"marked": 1, "unread": 0}
    after = await stack.http.get(
        "/v1/me/notifications", headers={**person.auth, "If-None-Match": etag}
    )
    assert after.status_code == 200 and after.headers["ETag"] != etag
    assert after.json()["items"][0]["read"] is True
    # a new line changes it too
    await training(stack, person, "超声基础", start_date="2026-11-03", end_date="2026-11-03")
    newer = await stack.http.get(
        "/v1/me/notifications", headers={**person.auth, "If-None-Match": after.headers["ETag"]}
    )
    assert newer.status_code == 200 and newer.json()["unread"] == 1


async def test_mark_all_read_and_only_ones_own(stack: Stack, person: Person) -> None:
    await training(stack, person, "甲")
    await training(stack, person, "乙", start_date="2026-11-03", end_date="2026-11-03")
    someone = await stack.register(stack.orgs["unit"])
    await training(stack, someone, "丙")
    mine = await feed(stack, person)
    assert {n["message"][:3] for n in mine["items"]} == {"「甲」", "「乙」"}
    # marking another person's line does nothing
    theirs = (await feed(stack, someone))["items"][0]["id"]
    nothing = await stack.http.post(
        "/v1/me/notifications/read", json={"ids": [theirs]}, headers=person.auth
    )
    assert nothing.json() == {"marked": 0, "unread": 2}
    everything = await stack.http.post("/v1/me/notifications/read", headers=person.auth)
    assert everything.json() == {"marked": 2, "unread": 0}
    assert (await feed(stack, someone))["unread"] == 1


async def test_only_personnel_have_a_feed(stack: Stack) -> None:
    unit = stack.auth("unit_admin", org=stack.orgs["unit"])
    assert_problem(await stack.http.get("/v1/me/notifications", headers=unit), 403, CODE)
    assert_problem(await stack.http.post("/v1/me/notifications/read", headers=unit), 403, CODE)


async def test_a_revoked_certificate_and_a_redelivered_event(stack: Stack, person: Person) -> None:
    code = f"ZZ2026-N-{person.id[:8]}"
    await stack.publish(
        REGISTRY,
        CertificateIssued(
            code=code,
            project_id="p",
            project_name="数字化管理师",
            id_number=person.id_number,
            holder_name="张三",
            year=2026,
            subject="professional",
            hours=8,
        ),
        subject=code,
    )
    claim = await training(stack, person, "数字化管理师", certificate_code=code)
    await stack.approve(claim)
    revoked = await stack.publish(
        REGISTRY, CertificateRevoked(code=code, reason="代考"), subject=code
    )
    # the same event delivered again: the inbox drops it, so no second line
    bus = stack.app.state.service.bus
    await bus.publish(REGISTRY, code, revoked.to_bytes(), {"event_type": revoked.type})
    await stack.publish(REGISTRY, CertificateRevoked(code="ZZ-UNKNOWN", reason="x"), subject=code)
    kinds = [n["kind"] for n in (await feed(stack, person))["items"]]
    assert kinds == ["credit_revoked", "claim_approved", "claim_submitted"]


async def test_a_voided_province_record_shows_on_the_claim_and_in_the_feed(
    stack: Stack, person: Person
) -> None:
    """Issue 20 item 5: once the province record of a revoked claim is voided, the claim's
    sync_status is voided (void_failed when the province keeps refusing), and the feed says so."""
    outcomes: dict[str, tuple[str, str]] = {}
    for n, event_type in enumerate(("sync.record_voided", "sync.record_void_failed")):
        code = f"ZZ2026-V{n}-{person.id[:8]}"
        await stack.publish(
            REGISTRY,
            CertificateIssued(
                code=code, project_id="p", project_name="急救", id_number=person.id_number,
                holder_name="张三", year=2026, subject="professional", hours=8,
            ),
            subject=code,
        )  # fmt: skip
        day = f"2026-11-0{n + 3}"
        claim = await training(
            stack, person, f"急救{n}", certificate_code=code, start_date=day, end_date=day
        )
        await stack.approve(claim)
        await stack.publish(
            SYNC,
            SyncRecordRegistered(
                record_id=f"r-{claim['id']}", claim_id=claim["id"], province_receipt="SD-2"
            ),
            subject=claim["id"],
        )
        assert (await stack.claim(claim["id"]))["sync_status"] == "registered"
        await stack.publish(REGISTRY, CertificateRevoked(code=code, reason="代考"), subject=code)
        record = {"record_id": f"r-{claim['id']}", "claim_id": claim["id"]}
        if event_type == SyncRecordVoidFailed.TYPE:
            await stack.publish(SYNC, SyncRecordVoidFailed(**record, reason="x"), subject=code)
            # a later voided record of the same claim does not hide the failure
            await stack.publish(SYNC, SyncRecordVoided(**record), subject=code)
        else:
            await stack.publish(SYNC, SyncRecordVoided(**record), subject=code)
        shown = await stack.claim(claim["id"])
        outcomes[event_type] = (shown["status"], shown["sync_status"])
    assert outcomes == {
        "sync.record_voided": ("revoked", "voided"),
        "sync.record_void_failed": ("revoked", "void_failed"),
    }
    kinds = [n["kind"] for n in (await feed(stack, person))["items"]]
    assert kinds[:3] == ["province_void_failed", "credit_revoked", "registered_at_province"]
    assert "province_voided" in kinds


async def test_reminders_reach_the_feed_once(stack: Stack, person: Person) -> None:
    run = {"year": 2026, "date": "2026-12-15"}
    first = await stack.http.post("/v1/reminders/run", json=run, headers=stack.city)
    assert first.status_code == 200, first.text
    await stack.http.post("/v1/reminders/run", json=run, headers=stack.city)
    lines = [n for n in (await feed(stack, person))["items"] if n["kind"] == "reminder_due"]
    assert len(lines) == 1
    assert lines[0]["data"]["gaps"] == {"public": 30.0, "professional": 60.0}
    assert "30 h public, 60 h professional" in lines[0]["message"]
