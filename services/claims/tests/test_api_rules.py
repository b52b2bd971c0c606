"""The claims API on a real app: every problem ``code`` it returns for a rule breach (status,
``application/problem+json``, a helpful ``detail``, and no partial state left behind), and every
category of DOMAIN.md claimed, approved and credited end to end with the notice's numbers.

Review outcomes and registry facts arrive as events on the embedded log, as in production.
"""

from __future__ import annotations

import calendar
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from libs.common.events import (
    CertificateIssued,
    CertificateRevoked,
    ExamCardIssued,
    LearningRecorded,
    LearningRecordedBatch,
    ProjectApproved,
    topic_of,
)
from services.claims import rules
from services.claims.tests.harness import (
    AFTER_WINDOW,
    CLOCK,
    Person,
    Stack,
    claims_stack,
    credits_of,
    new_id_number,
    pdf_bytes,
    with_bad_checksum,
)
from tests.support import assert_problem

REGISTRY = topic_of("registry")
SYNC = topic_of("sync")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("claims-rules")) as s:
        district = await s.add_org("district")
        s.app.state.test_orgs = {
            "district": district,
            "unit": await s.add_org("unit", district),
            "agency": await s.add_org("agency", district),
        }
        yield s


def org(stack: Stack, label: str) -> str:
    return str(stack.app.state.test_orgs[label])


@pytest.fixture
async def person(stack: Stack) -> Person:
    return await stack.register(org(stack, "unit"))


async def files(stack: Stack, person: Person) -> list[str]:
    return [await stack.upload(person)]


_TRAINING_DAYS = itertools.count()


def training(evidence: list[str], **overrides: Any) -> dict[str, Any]:
    # each training on two days of its own: one person's trainings on the same days would
    # together break the per-person daily cap (issue 20)
    start = date(2026, 2, 2) + timedelta(days=2 * (next(_TRAINING_DAYS) % 150))
    return {
        "year": 2026,
        "category": "training",
        "title": "急诊医学新进展培训班",
        "hours": 16,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=1)).isoformat(),
        "reference_no": "鲁卫继备〔2026〕15号",
        "evidence_ids": evidence,
        **overrides,
    }


def claim_of(category: str, evidence: list[str], **fields: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    months = fields.get("months")
    if category in ("aid_deployment", "special_leave") and isinstance(months, int):
        # months are computed from the dates (issue 20): January to the month-th month
        last = months if 1 <= months <= 12 else 3
        details["start_date"] = "2026-01-01"
        end = date(2026, last, calendar.monthrange(2026, last)[1])
        details["end_date"] = min(end, CLOCK.date()).isoformat()  # not after "today"
    if category == "transfer_in":
        details["transfer_date"] = "2026-07-01"
        details["issuing_authority"] = "济南市人力资源和社会保障局"
    return {
        "year": 2026,
        "category": category,
        "title": f"{category} claim",
        "evidence_ids": evidence,
        **details,
        **fields,
    }


async def post_claim(stack: Stack, person: Person, body: dict[str, Any], **headers: str) -> Any:
    return await stack.http.post(
        "/v1/claims", json={"person_id": person.id, **body}, headers={**person.auth, **headers}
    )


async def issue_certificate(
    stack: Stack, id_number: str, *, hours: float = 16, subject: str = "professional"
) -> str:
    code = f"ZZ2026-{uuid.uuid4().hex[:10].upper()}"
    await stack.publish(
        REGISTRY,
        CertificateIssued(
            code=code,
            project_id="project-1",
            project_name="数字化管理师（初级）",
            id_number=id_number,
            holder_name="张三",
            year=2026,
            subject=subject,  # type: ignore[arg-type]
            hours=hours,
        ),
        subject=code,
    )
    return code


async def issue_card(stack: Stack, id_number: str, *, hours: float = 6.5) -> str:
    card_no = f"KW2026-{uuid.uuid4().hex[:8].upper()}"
    await stack.publish(
        REGISTRY,
        ExamCardIssued(card_no=card_no, id_number=id_number, name="张三", year=2026, hours=hours),
        subject=card_no,
    )
    return card_no


async def refused(
    stack: Stack, person: Person, body: dict[str, Any], code: str, status: int = 422
) -> dict[str, Any]:
    """Submitting ``body`` is refused with ``code`` and leaves no claim and no event behind."""
    async with stack.no_new_state(person.id):
        response = await post_claim(stack, person, body)
        return assert_problem(response, status, code)


# === persons ================================================================================


class TestPersonProblems:
    async def test_invalid_id_number(self, stack: Stack) -> None:
        id_number = new_id_number()
        body = {
            "id_number": with_bad_checksum(id_number),
            "name": "李四",
            "affiliation": {"kind": "unit", "org_id": org(stack, "unit")},
        }
        async with stack.no_new_state():
            r = await stack.http.post("/v1/persons", json=body, headers=stack.city)
            problem = assert_problem(r, 422, "invalid_id_number")
        assert "check character" in problem["detail"]
        # nothing was registered: the corrected number is not a duplicate
        r = await stack.http.post(
            "/v1/persons", json={**body, "id_number": id_number}, headers=stack.city
        )
        assert r.status_code == 201, r.text

    async def test_validation_error(self, stack: Stack) -> None:
        async with stack.no_new_state():
            r = await stack.http.post(
                "/v1/persons", json={"id_number": new_id_number()}, headers=stack.city
            )
            problem = assert_problem(r, 422, "validation_error")
        assert "name" in problem["detail"] and "affiliation" in problem["detail"]
        assert {tuple(e["loc"])[-1] for e in problem["errors"]} >= {"name", "affiliation"}

    async def test_unknown_org(self, stack: Stack) -> None:
        id_number = new_id_number()
        body = {
            "id_number": id_number,
            "name": "李四",
            "affiliation": {"kind": "unit", "org_id": "no-such-org"},
        }
        async with stack.no_new_state():
            r = await stack.http.post("/v1/persons", json=body, headers=stack.city)
            problem = assert_problem(r, 422, "unknown_org")
        assert "no-such-org" in problem["detail"]
        body["affiliation"] = {"kind": "unit", "org_id": org(stack, "unit")}
        assert (
            await stack.http.post("/v1/persons", json=body, headers=stack.city)
        ).status_code == 201

    async def test_affiliation_mismatch(self, stack: Stack) -> None:
        body = {
            "id_number": new_id_number(),
            "name": "李四",
            "affiliation": {"kind": "agency", "org_id": org(stack, "unit")},
        }
        async with stack.no_new_state():
            r = await stack.http.post("/v1/persons", json=body, headers=stack.city)
            problem = assert_problem(r, 422, "affiliation_mismatch")
        assert "agency" in problem["detail"] and "unit" in problem["detail"]

    async def test_duplicate_person_is_409(self, stack: Stack, person: Person) -> None:
        body = {
            "id_number": person.id_number.lower(),
            "name": "王五",
            "affiliation": {"kind": "unit", "org_id": org(stack, "unit")},
        }
        async with stack.no_new_state():
            r = await stack.http.post("/v1/persons", json=body, headers=stack.city)
            assert_problem(r, 409, "duplicate_person")
        r = await stack.http.get(f"/v1/persons/{person.id}", headers=stack.city)
        assert r.json()["name"] == "张三"


# === evidence ===============================================================================


class TestEvidenceProblems:
    def stored_files(self, stack: Stack) -> int:
        root = stack.data_dir / "evidence"
        return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0

    async def test_unsupported_evidence_type(self, stack: Stack, person: Person) -> None:
        before = self.stored_files(stack)
        async with stack.no_new_state():
            r = await stack.http.post(
                "/v1/evidence",
                files={"file": ("cert.pdf", b"just some text, not a PDF", "application/pdf")},
                headers=person.auth,
            )
            problem = assert_problem(r, 422, "unsupported_evidence_type")
        assert "PDF" in problem["detail"]
        assert self.stored_files(stack) == before

    async def test_evidence_too_large(self, stack: Stack, person: Person) -> None:
        before = self.stored_files(stack)
        data = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024)
        r = await stack.http.post(
            "/v1/evidence",
            files={"file": ("big.pdf", data, "application/pdf")},
            headers=person.auth,
        )
        problem = assert_problem(r, 413, "evidence_too_large")
        assert "10 MiB" in problem["detail"]
        assert problem["max_bytes"] == 10 * 1024 * 1024
        assert self.stored_files(stack) == before

    async def test_empty_evidence(self, stack: Stack, person: Person) -> None:
        r = await stack.http.post(
            "/v1/evidence", files={"file": ("e.pdf", b"", "application/pdf")}, headers=person.auth
        )
        assert_problem(r, 422, "empty_evidence")

    async def test_unknown_evidence(self, stack: Stack, person: Person) -> None:
        body = claim_of("study", ["no-such-evidence"], hours=10)
        problem = await refused(stack, person, body, "unknown_evidence")
        assert "no-such-evidence" in problem["detail"]

    async def test_someone_elses_evidence_is_unknown(self, stack: Stack, person: Person) -> None:
        other = await stack.register(org(stack, "unit"))
        theirs = await stack.upload(other)
        await refused(stack, person, claim_of("study", [theirs], hours=10), "unknown_evidence")


# === claims: one test per problem code ======================================================


class TestClaimProblems:
    async def test_validation_error(self, stack: Stack, person: Person) -> None:
        body = {"year": "twenty", "category": "study", "evidence_ids": []}
        problem = await refused(stack, person, body, "validation_error")
        assert "title" in problem["detail"] and "year" in problem["detail"]

    async def test_window_closed(self, stack: Stack, person: Person) -> None:
        evidence = await files(stack, person)
        stack.app.state.service.clock = lambda: AFTER_WINDOW
        try:
            problem = await refused(stack, person, training(evidence), "window_closed")
        finally:
            stack.app.state.service.clock = lambda: CLOCK
        assert "2026-12-31" in problem["detail"]
        assert problem["closes_at"].startswith("2026-12-31T23:59:59")

    async def test_daily_cap_exceeded(self, stack: Stack, person: Person) -> None:
        body = training(await files(stack, person), hours=17)
        problem = await refused(stack, person, body, "daily_cap_exceeded")
        assert problem["max_hours"] == 16 and problem["days"] == 2
        assert "16" in problem["detail"]

    async def test_daily_cap_exceeded_for_expert_activity(
        self, stack: Stack, person: Person
    ) -> None:
        body = claim_of(
            "expert_activity",
            await files(stack, person),
            hours=8.5,
            start_date="2026-10-10",
            end_date="2026-10-10",
        )
        problem = await refused(stack, person, body, "daily_cap_exceeded")
        assert problem["max_hours"] == 8

    async def test_yearly_cap_reached(self, stack: Stack, person: Person) -> None:
        first = await stack.submit(person, claim_of("study", await files(stack, person), hours=40))
        assert (await stack.approve(first))["credits"] == [{"subject": "professional", "hours": 40}]
        body = claim_of("study", await files(stack, person), hours=2)
        async with stack.no_new_state(person.id):
            r = await post_claim(stack, person, body)
            problem = assert_problem(r, 422, "yearly_cap_reached")
        assert problem["cap"] == "study" and problem["limit"] == 40 and problem["used"] == 40
        assert "study" in problem["detail"] and "40" in problem["detail"]

    async def test_evidence_required(self, stack: Stack, person: Person) -> None:
        problem = await refused(stack, person, claim_of("study", [], hours=10), "evidence_required")
        assert "evidence file" in problem["detail"]

    async def test_evidence_required_names_the_missing_reference(
        self, stack: Stack, person: Person
    ) -> None:
        body = claim_of("achievement", await files(stack, person))
        problem = await refused(stack, person, body, "evidence_required")
        assert "reference number" in problem["detail"]

    async def test_duplicate_evidence_certificate_code(self, stack: Stack, person: Person) -> None:
        code = await issue_certificate(stack, person.id_number)
        await stack.submit(person, training(await files(stack, person), certificate_code=code))
        body = training(await files(stack, person), certificate_code=f" {code} ")
        problem = await refused(stack, person, body, "duplicate_evidence")
        assert "certificate code" in problem["detail"]

    async def test_duplicate_evidence_exam_card(self, stack: Stack, person: Person) -> None:
        card = await issue_card(stack, person.id_number)
        await stack.submit(person, claim_of("exam_staff", [], exam_card_no=card))
        body = claim_of("exam_staff", [], exam_card_no=card)
        problem = await refused(stack, person, body, "duplicate_evidence")
        assert "exam card no" in problem["detail"]

    async def test_duplicate_evidence_patent_number(self, stack: Stack, person: Person) -> None:
        patent = "ZL 2025 1 0123456.7"
        await stack.submit(
            person, claim_of("achievement", await files(stack, person), reference_no=patent)
        )
        body = claim_of("achievement", await files(stack, person), reference_no=patent)
        await refused(stack, person, body, "duplicate_evidence")

    async def test_duplicate_evidence_same_file(self, stack: Stack, person: Person) -> None:
        evidence = await files(stack, person)
        first = await stack.submit(person, claim_of("study", evidence, hours=4))
        problem = await refused(
            stack, person, claim_of("study", evidence, hours=6), "duplicate_evidence"
        )
        assert first["id"] in problem["detail"] and problem["claim_id"] == first["id"]

    async def test_duplicate_evidence_same_content_uploaded_twice(
        self, stack: Stack, person: Person
    ) -> None:
        data = pdf_bytes("same")
        await stack.submit(person, claim_of("study", [await stack.upload(person, data)], hours=4))
        again = await stack.upload(person, data)
        await refused(stack, person, claim_of("study", [again], hours=4), "duplicate_evidence")

    async def test_unfiled_training(self, stack: Stack, person: Person) -> None:
        body = training(await files(stack, person))
        del body["reference_no"]
        problem = await refused(stack, person, body, "unfiled_training")
        assert "备案" in problem["detail"]

    async def test_unfiled_training_unknown_project(self, stack: Stack, person: Person) -> None:
        body = training(await files(stack, person), project_id="not-filed")
        del body["reference_no"]
        await refused(stack, person, body, "unfiled_training")

    async def test_unknown_certificate(self, stack: Stack, person: Person) -> None:
        body = training(await files(stack, person), certificate_code="ZZ2026-NOPE")
        problem = await refused(stack, person, body, "unknown_certificate")
        assert "e-certificate" in problem["detail"]

    async def test_certificate_revoked(self, stack: Stack, person: Person) -> None:
        code = await issue_certificate(stack, person.id_number)
        await stack.publish(REGISTRY, CertificateRevoked(code=code, reason="代考"), subject=code)
        body = training(await files(stack, person), certificate_code=code)
        problem = await refused(stack, person, body, "certificate_revoked")
        assert "代考" in problem["detail"]

    async def test_certificate_holder_mismatch(self, stack: Stack, person: Person) -> None:
        code = await issue_certificate(stack, new_id_number())
        body = training(await files(stack, person), certificate_code=code)
        problem = await refused(stack, person, body, "certificate_holder_mismatch")
        assert "someone else" in problem["detail"]

    async def test_certificate_year_mismatch(self, stack: Stack, person: Person) -> None:
        code = f"ZZ2025-{uuid.uuid4().hex[:8]}"
        await stack.publish(
            REGISTRY,
            CertificateIssued(
                code=code,
                project_id="p",
                project_name="p",
                id_number=person.id_number,
                holder_name="张三",
                year=2025,
                subject="professional",
                hours=8,
            ),
            subject=code,
        )
        body = training(await files(stack, person), certificate_code=code)
        await refused(stack, person, body, "certificate_year_mismatch")

    async def test_unknown_exam_card(self, stack: Stack, person: Person) -> None:
        body = claim_of("exam_staff", [], exam_card_no="KW-NOPE")
        problem = await refused(stack, person, body, "unknown_exam_card")
        assert "学时登记卡" in problem["detail"]

    async def test_exam_card_holder_mismatch(self, stack: Stack, person: Person) -> None:
        card = await issue_card(stack, new_id_number())
        body = claim_of("exam_staff", [], exam_card_no=card)
        await refused(stack, person, body, "exam_card_holder_mismatch")

    async def test_an_exam_card_its_holder_declared_is_another_persons_evidence(
        self, stack: Stack, person: Person
    ) -> None:
        """Issue 20 item 9: a 学时登记卡 cited by a second person once its holder declared it."""
        card = await issue_card(stack, person.id_number)
        await stack.submit(person, claim_of("exam_staff", [], exam_card_no=card))
        other = await stack.register(org(stack, "unit"))
        body = claim_of("exam_staff", [], exam_card_no=card.lower())
        problem = await refused(stack, other, body, "evidence_of_another_person")
        assert problem["evidence"] == "exam_card_no" and person.id not in str(problem)

    async def test_hours_mismatch_with_the_card(self, stack: Stack, person: Person) -> None:
        card = await issue_card(stack, person.id_number, hours=6)
        body = claim_of("exam_staff", [], exam_card_no=card, hours=8)
        problem = await refused(stack, person, body, "hours_mismatch")
        assert problem["card_hours"] == 6

    async def test_invalid_category(self, stack: Stack, person: Person) -> None:
        body = claim_of("gardening", await files(stack, person), hours=3)
        problem = await refused(stack, person, body, "invalid_category")
        assert "gardening" in problem["detail"] and "training" in problem["detail"]

    @pytest.mark.parametrize(
        ("category", "fields"),
        [
            ("achievement", {"hours": 12, "reference_no": "CN-STD-1"}),
            ("study", {"hours": 1.25}),
            ("study", {"hours": -3}),
            ("transfer_in", {}),
        ],
        ids=["achievement-not-10", "two-decimals", "negative", "transfer-without-credits"],
    )
    async def test_invalid_hours(
        self, stack: Stack, person: Person, category: str, fields: dict[str, Any]
    ) -> None:
        body = claim_of(category, await files(stack, person), **fields)
        await refused(stack, person, body, "invalid_hours")

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            ("2026-11-03", "2026-11-02"),  # end before start
            ("2026-12-24", "2026-12-25"),  # after "today" (2026-12-20)
            ("2025-12-31", "2026-01-01"),  # outside the rule year
            (None, None),  # a training needs its dates
        ],
        ids=["end-before-start", "future", "outside-year", "missing"],
    )
    async def test_invalid_dates(
        self, stack: Stack, person: Person, start: str | None, end: str | None
    ) -> None:
        body = training(await files(stack, person), start_date=start, end_date=end, hours=8)
        body = {k: v for k, v in body.items() if v is not None}
        problem = await refused(stack, person, body, "invalid_dates")
        assert "date" in problem["detail"]

    @pytest.mark.parametrize("months", [0, 13])
    async def test_invalid_months(self, stack: Stack, person: Person, months: int) -> None:
        body = claim_of("aid_deployment", await files(stack, person), months=months)
        problem = await refused(stack, person, body, "invalid_months")
        assert "1 to 12" in problem["detail"]

    async def test_invalid_subject(self, stack: Stack, person: Person) -> None:
        body = claim_of("study", await files(stack, person), hours=4, subject="public")
        await refused(stack, person, body, "invalid_subject")

    async def test_unknown_rule_year(self, stack: Stack, person: Person) -> None:
        body = {**claim_of("study", await files(stack, person), hours=4), "year": 2019}
        problem = await refused(stack, person, body, "unknown_rule_year")
        assert "2019" in problem["detail"]

    async def test_idempotency_key_reused(self, stack: Stack, person: Person) -> None:
        evidence = await files(stack, person)
        first = await stack.submit(person, claim_of("study", evidence, hours=4), key="k-reuse")
        async with stack.no_new_state(person.id):
            r = await post_claim(
                stack,
                person,
                claim_of("study", evidence, hours=5),
                **{"Idempotency-Key": "k-reuse"},
            )
            assert_problem(r, 422, "idempotency_key_reused")
        assert [c["id"] for c in await stack.claims_of(person.id)] == [first["id"]]

    async def test_claim_not_rejected_is_409(self, stack: Stack, person: Person) -> None:
        claim = await stack.submit(person, claim_of("study", await files(stack, person), hours=4))
        async with stack.no_new_state(person.id):
            r = await stack.http.post(
                f"/v1/claims/{claim['id']}/revisions",
                json={"person_id": person.id, **claim_of("study", [], hours=5)},
                headers=person.auth,
            )
            problem = assert_problem(r, 409, "claim_not_rejected")
        assert "in_review" in problem["detail"]
        after = await stack.claim(claim["id"])
        assert (after["revision"], after["requested_hours"]) == (1, 4)

    async def test_revision_mismatch(self, stack: Stack, person: Person) -> None:
        claim = await stack.submit(person, claim_of("study", await files(stack, person), hours=4))
        await stack.reject(claim, "学习档案不全")
        async with stack.no_new_state():
            r = await stack.http.post(
                f"/v1/claims/{claim['id']}/revisions",
                json={"person_id": person.id, **claim_of("study", [], hours=5), "year": 2027},
                headers=person.auth,
            )
            assert_problem(r, 422, "revision_mismatch")
        assert (await stack.claim(claim["id"]))["status"] == "rejected"

    async def test_revisions_close_with_the_declaration_window(
        self, stack: Stack, person: Person, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Issue 20 item 11: a claim rejected in the last days of December cannot be revised in
        January by default; with a city grace period in the rule data it can, until it ends."""
        claim = await stack.submit(person, claim_of("study", await files(stack, person), hours=4))
        await stack.reject(claim, "学习档案不全")
        revision = {
            "person_id": person.id,
            **claim_of("study", await files(stack, person), hours=5),
        }
        path = f"/v1/claims/{claim['id']}/revisions"
        stack.app.state.service.clock = lambda: AFTER_WINDOW
        try:
            async with stack.no_new_state():
                r = await stack.http.post(path, json=revision, headers=person.auth)
                assert_problem(r, 422, "window_closed")
            ruleset = rules.load_ruleset(2026)
            assert ruleset.declaration_window is not None
            graced = ruleset.model_copy(
                update={
                    "declaration_window": ruleset.declaration_window.model_copy(
                        update={"revisions_close": datetime(2027, 1, 10, 23, 59, 59, tzinfo=UTC)}
                    )
                }
            )
            monkeypatch.setattr(rules, "load_ruleset", lambda year: graced)
            # new claims stay closed; the revision is in the grace period
            await refused(stack, person, claim_of("study", await files(stack, person), hours=1),
                          "window_closed")  # fmt: skip
            r = await stack.http.post(path, json=revision, headers=person.auth)
            assert r.status_code == 201, r.text
            assert r.json()["revision"] == 2
        finally:
            stack.app.state.service.clock = lambda: CLOCK

    async def test_withdrawn_claim_cannot_be_withdrawn_again_409(
        self, stack: Stack, person: Person
    ) -> None:
        claim = await stack.submit(person, claim_of("study", await files(stack, person), hours=4))
        r = await stack.http.post(f"/v1/claims/{claim['id']}/withdraw", headers=person.auth)
        assert r.status_code == 200
        async with stack.no_new_state(person.id):
            r = await stack.http.post(f"/v1/claims/{claim['id']}/withdraw", headers=person.auth)
            assert_problem(r, 409, "claim_not_open")


# === every category, end to end =============================================================


class TestCategories:
    async def test_training_16_hours_over_two_days(self, stack: Stack, person: Person) -> None:
        claim = await stack.submit(person, training(await files(stack, person)))
        assert (claim["status"], claim["stage"], claim["revision"]) == ("in_review", "unit", 1)
        assert claim["requested_hours"] == 16
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 16}]
        assert any("filing number" in w for w in claim["warnings"])
        [event] = await stack.outbox(claim["id"])
        assert event.type == "claim.submitted" and event.data["verified_evidence"] is False

    async def test_a_filing_number_is_shared_but_a_patent_number_is_not(
        self, stack: Stack, person: Person
    ) -> None:
        # every trainee of a filed training cites its filing number: not personal evidence
        for _ in range(2):
            await stack.submit(person, training(await files(stack, person)))
        patent = {
            "year": 2026,
            "category": "achievement",
            "title": "一种急救装置",
            "reference_no": "ZL 2026 1 0000001.1",
        }
        await stack.submit(person, {**patent, "evidence_ids": await files(stack, person)})
        r = await stack.http.post(
            "/v1/claims",
            json={"person_id": person.id, **patent, "evidence_ids": await files(stack, person)},
            headers=person.auth,
        )
        assert_problem(r, 422, "duplicate_evidence")

    async def test_public_training_needs_a_public_e_certificate(
        self, stack: Stack, person: Person
    ) -> None:
        code = await issue_certificate(stack, person.id_number, hours=12, subject="public")
        body = training([], subject="public", hours=12, certificate_code=code)
        claim = await stack.submit(person, body)
        assert claim["expected_credits"] == [{"subject": "public", "hours": 12}]
        # a filing number alone does not say the training was a public-subject one
        unverified = training(await files(stack, person), subject="public", hours=12)
        problem = await refused(stack, person, unverified, "public_subject_unverified")
        assert "professional" in problem["detail"] and problem["subject"] == "public"
        # a city-filed project says so when its filing names the public subject, not otherwise
        for subject in ("public", "professional", None):
            project_id = str(uuid.uuid4())
            await stack.publish(
                REGISTRY,
                ProjectApproved(
                    project_id=project_id,
                    name="公需科目：数字经济",
                    year=2026,
                    applicant_org_id="x",
                    subject=subject,
                ),
                subject=project_id,
            )
            body = training(await files(stack, person), subject="public", hours=6)
            body["project_id"] = project_id
            del body["reference_no"]
            if subject == "public":
                claim = await stack.submit(person, body)
                assert claim["expected_credits"] == [{"subject": "public", "hours": 6}]
            elif subject == "professional":  # the filing says otherwise
                await refused(stack, person, body, "invalid_subject")
            else:  # the filing says nothing (an event from before subjects were carried)
                await refused(stack, person, body, "public_subject_unverified")

    async def test_training_with_an_e_certificate_is_verified(
        self, stack: Stack, person: Person
    ) -> None:
        code = await issue_certificate(stack, person.id_number, hours=12)
        body = training([], certificate_code=code)
        del body["hours"], body["reference_no"]
        claim = await stack.submit(person, body)
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 12}]
        [event] = await stack.outbox(claim["id"])
        assert event.data["verified_evidence"] is True
        # the reviewers are told which filed project the certificate comes from
        assert event.data["project_id"] == "project-1"
        more = training([], certificate_code=code, hours=14)
        await refused(
            stack, await stack.register(org(stack, "unit")), more, "certificate_holder_mismatch"
        )

    async def test_training_of_a_filed_city_project(self, stack: Stack, person: Person) -> None:
        project_id = str(uuid.uuid4())
        await stack.publish(
            REGISTRY,
            ProjectApproved(
                project_id=project_id, name="数字化管理师（中级）", year=2026, applicant_org_id="x"
            ),
            subject=project_id,
        )
        body = training(await files(stack, person), project_id=project_id)
        del body["reference_no"]
        claim = await stack.submit(person, body)
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 16}]
        assert any("数字化管理师" in w for w in claim["warnings"])
        # claim.submitted names the project, so review can show its filing status
        [event] = await stack.outbox(claim["id"])
        assert event.type == "claim.submitted" and event.data["project_id"] == project_id
        # a training cited by another department's filing number names no project
        other = await stack.submit(
            person,
            training(await files(stack, person), start_date="2026-10-12", end_date="2026-10-13"),
        )
        [event] = await stack.outbox(other["id"])
        assert event.data["project_id"] is None

    async def test_study_is_cut_to_the_40_hour_cap_with_a_warning(
        self, stack: Stack, person: Person
    ) -> None:
        claim = await stack.submit(person, claim_of("study", await files(stack, person), hours=45))
        assert claim["requested_hours"] == 45
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 40}]
        assert any("40-hour yearly cap" in w and "Only 40 of 45" in w for w in claim["warnings"])

    async def test_qualification_exam_counts_16(self, stack: Stack, person: Person) -> None:
        body = claim_of(
            "qualification_exam", await files(stack, person), certificate_code="CPA-2026-0001"
        )
        claim = await stack.submit(person, body)
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 16}]
        assert (await stack.approve(claim))["credits"] == [{"subject": "professional", "hours": 16}]

    async def test_a_personal_certificate_cited_by_a_second_person_is_refused(
        self, stack: Stack, person: Person
    ) -> None:
        """Issue 20 item 9: one personal certificate, one person (seen: two people claimed
        16 h each on one certificate). The number, or the very same file, is refused for the
        second person, who learns nothing about the first."""
        number = f"ZG-{person.id[:12]}"
        scan = pdf_bytes(person.id)
        mine = [await stack.upload(person, scan)]
        first = await stack.submit(
            person, claim_of("qualification_exam", mine, certificate_code=number)
        )
        other = await stack.register(org(stack, "unit"))
        body = claim_of(
            "qualification_exam", await files(stack, other), certificate_code=f" {number.lower()}"
        )
        problem = await refused(stack, other, body, "evidence_of_another_person")
        assert person.id not in str(problem) and first["id"] not in str(problem)
        # the same scan under another number, and a transfer-in certificate's number
        same_file = await stack.upload(other, scan)
        body = claim_of("qualification_exam", [same_file], certificate_code=f"ZG-X-{other.id}")
        await refused(stack, other, body, "evidence_of_another_person")
        transfer = claim_of(
            "transfer_in",
            await files(stack, person),
            credits=[{"subject": "professional", "hours": 20}],
            reference_no=f"DC-{person.id[:12]}",
        )
        await stack.submit(person, transfer)
        copied = {**transfer, "evidence_ids": await files(stack, other)}
        await refused(stack, other, copied, "evidence_of_another_person")
        # not personal: a training's filing number is shared by its trainees
        for who in (person, other):
            await stack.submit(who, training(await files(stack, who), reference_no="鲁备-1"))
        # withdrawn, the certificate is free for its holder's claim
        r = await stack.http.post(f"/v1/claims/{first['id']}/withdraw", headers=person.auth)
        assert r.status_code == 200, r.text
        body = claim_of("qualification_exam", await files(stack, other), certificate_code=number)
        assert (await post_claim(stack, other, body)).status_code == 201

    async def test_achievements_count_10_each_up_to_30_in_approval_order(
        self, stack: Stack, person: Person
    ) -> None:
        claims = []
        for n in range(4):
            body = claim_of(
                "achievement", await files(stack, person), reference_no=f"ZL2026-{n}-{person.id}"
            )
            claims.append(await stack.submit(person, body))
        assert all(
            c["expected_credits"] == [{"subject": "professional", "hours": 10}] for c in claims
        )
        approved = [await stack.approve(c) for c in claims]
        assert [c["credits"][0]["hours"] for c in approved] == [10, 10, 10, 0]
        assert [c["status"] for c in approved] == ["approved"] * 4
        transcript = await stack.transcript(person.id)
        assert transcript["credited"]["professional"] == 30
        last = [e for e in transcript["entries"] if e["ref"] == claims[3]["id"]]
        assert last and last[0]["hours"] == 0 and "cap" in last[0]["note"]
        body = claim_of("achievement", await files(stack, person), reference_no="ZL2026-9")
        problem = await refused(stack, person, body, "yearly_cap_reached")
        assert problem["cap"] == "achievement" and problem["limit"] == 30

    async def test_expert_activity_counts_actual_hours(self, stack: Stack, person: Person) -> None:
        body = claim_of(
            "expert_activity",
            await files(stack, person),
            hours=12,
            start_date="2026-09-01",
            end_date="2026-09-02",
        )
        claim = await stack.submit(person, body)
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 12}]

    async def test_aid_deployment_six_months(self, stack: Stack, person: Person) -> None:
        claim = await stack.submit(
            person, claim_of("aid_deployment", await files(stack, person), months=6)
        )
        assert credits_of(claim["expected_credits"]) == {"public": 15, "professional": 30}
        assert claim["requested_hours"] == 45
        approved = await stack.approve(claim)
        assert credits_of(approved["credits"]) == {"public": 15, "professional": 30}
        # a second deployment of 8 months, May to December: May and June are credited already
        more = await stack.submit(
            person,
            claim_of(
                "aid_deployment",
                await files(stack, person),
                months=8,
                start_date="2026-05-01",
                end_date="2026-12-20",
            ),
        )
        assert credits_of(more["expected_credits"]) == {"public": 15, "professional": 30}
        assert any("only the other 6 month(s) count" in w for w in more["warnings"])

    async def test_competition_counts_10(self, stack: Stack, person: Person) -> None:
        claim = await stack.submit(person, claim_of("competition", await files(stack, person)))
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 10}]

    async def test_exam_staff_with_a_verified_card(self, stack: Stack, person: Person) -> None:
        card = await issue_card(stack, person.id_number, hours=6.5)
        claim = await stack.submit(person, claim_of("exam_staff", [], exam_card_no=card))
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 6.5}]
        assert claim["warnings"] == []
        [event] = await stack.outbox(claim["id"])
        assert event.data["verified_evidence"] is True and event.data["requested_hours"] == 6.5
        assert (await stack.approve(claim))["credits"] == [
            {"subject": "professional", "hours": 6.5}
        ]

    async def test_special_leave_a_full_year(self, stack: Stack, person: Person) -> None:
        claim = await stack.submit(
            person,
            claim_of("special_leave", await files(stack, person), months=12, leave_kind="abroad"),
        )
        assert credits_of(claim["expected_credits"]) == {"public": 30, "professional": 60}
        await stack.approve(claim)
        transcript = await stack.transcript(person.id)
        assert transcript["credited"] == {"public": 30, "professional": 60, "total": 90}
        assert transcript["compliant"] is True
        again = claim_of(
            "special_leave", await files(stack, person), months=1, leave_kind="maternity"
        )
        problem = await refused(stack, person, again, "yearly_cap_reached")
        assert problem["cap"] == "special_leave"

    async def test_transfer_in_credits_per_subject(self, stack: Stack, person: Person) -> None:
        credits = [{"subject": "public", "hours": 12}, {"subject": "professional", "hours": 24.5}]
        claim = await stack.submit(
            person, claim_of("transfer_in", await files(stack, person), credits=credits)
        )
        assert credits_of(claim["expected_credits"]) == {"public": 12, "professional": 24.5}
        assert claim["requested_hours"] == 36.5


# === lifecycle: approval, revocation, city platform, idempotency, withdraw, revisions ========


class TestLifecycle:
    async def test_approvals_book_credits_in_approval_order(
        self, stack: Stack, person: Person
    ) -> None:
        first = await stack.submit(person, claim_of("study", await files(stack, person), hours=30))
        second = await stack.submit(person, claim_of("study", await files(stack, person), hours=20))
        assert first["expected_credits"][0]["hours"] == 30
        assert second["expected_credits"][0]["hours"] == 20
        pending = await stack.transcript(person.id)
        assert pending["pending"] == {"public": 0, "professional": 50}
        # the later submission is approved first: it gets all it asked, the other is cut
        assert (await stack.approve(second))["credits"] == [
            {"subject": "professional", "hours": 20}
        ]
        cut = await stack.approve(first)
        assert cut["credits"] == [{"subject": "professional", "hours": 20}]
        assert cut["sync_status"] == "pending"
        transcript = await stack.transcript(person.id)
        assert [e["ref"] for e in transcript["entries"]] == [second["id"], first["id"]]
        assert [e["hours"] for e in transcript["entries"]] == [20, 20]
        assert transcript["entries"][0]["note"] is None
        assert "20 of 30 hours credited" in transcript["entries"][1]["note"]
        assert transcript["credited"]["professional"] == 40
        assert transcript["pending"] == {"public": 0, "professional": 0}
        assert transcript["compliant"] is False
        credited = [e for e in await stack.outbox() if e.type == "claim.credited"]
        assert {e.data["claim_id"] for e in credited} >= {first["id"], second["id"]}

    async def test_a_certificate_revoked_after_approval_revokes_the_credit(
        self, stack: Stack, person: Person
    ) -> None:
        code = await issue_certificate(stack, person.id_number)
        claim = await stack.submit(person, training([], certificate_code=code))
        assert (await stack.approve(claim))["status"] == "approved"
        assert (await stack.transcript(person.id))["credited"]["professional"] == 16
        await stack.publish(REGISTRY, CertificateRevoked(code=code, reason="伪造"), subject=code)
        after = await stack.claim(claim["id"])
        assert after["status"] == "revoked"
        assert "伪造" in after["rejection_reason"]
        transcript = await stack.transcript(person.id)
        assert transcript["credited"]["professional"] == 0
        assert transcript["compliant"] is False
        # the transcript still shows what happened: the entry, marked as no longer counting
        [entry] = [e for e in transcript["entries"] if e["ref"] == claim["id"]]
        assert entry["counts"] is False and entry["revoked_at"] is not None
        assert "revoked" in entry["note"]
        events = [e.type for e in await stack.outbox(claim["id"])]
        assert events == ["claim.submitted", "claim.credited", "claim.credit_revoked"]

    async def test_a_certificate_revoked_during_review_credits_nothing(
        self, stack: Stack, person: Person
    ) -> None:
        code = await issue_certificate(stack, person.id_number)
        claim = await stack.submit(person, training([], certificate_code=code))
        await stack.publish(REGISTRY, CertificateRevoked(code=code, reason="撤销"), subject=code)
        after = await stack.approve(claim)
        assert after["status"] == "revoked" and after["credits"] == []
        assert (await stack.transcript(person.id))["entries"] == []

    async def test_city_platform_learning_is_on_the_transcript(
        self, stack: Stack, person: Person
    ) -> None:
        record = LearningRecorded(
            record_id=f"city-{uuid.uuid4().hex[:8]}",
            id_number=person.id_number,
            year=2026,
            subject="public",
            hours=6,
            course="公需课：数字经济",
            completed_at=datetime(2026, 5, 1, tzinfo=UTC),
        )
        await stack.publish(SYNC, record, subject=record.record_id)
        await stack.publish(SYNC, record, subject=record.record_id)  # a second delivery
        transcript = await stack.transcript(person.id)
        assert [
            (e["source"], e["ref"], e["subject"], e["hours"]) for e in transcript["entries"]
        ] == [("city_platform", record.record_id, "public", 6)]
        assert transcript["credited"]["public"] == 6

    async def test_city_platform_learning_before_registration(self, stack: Stack) -> None:
        id_number = new_id_number()
        record = LearningRecorded(
            record_id=f"city-{uuid.uuid4().hex[:8]}",
            id_number=id_number,
            year=2026,
            subject="public",
            hours=3.5,
            course="公需课",
            completed_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        await stack.publish(SYNC, record, subject=record.record_id)
        r = await stack.http.post(
            "/v1/persons",
            json={
                "id_number": id_number,
                "name": "赵六",
                "affiliation": {"kind": "unit", "org_id": org(stack, "unit")},
            },
            headers=stack.city,
        )
        assert r.status_code == 201, r.text
        transcript = await stack.transcript(r.json()["id"])
        assert [(e["source"], e["ref"], e["hours"]) for e in transcript["entries"]] == [
            ("city_platform", record.record_id, 3.5)
        ]

    async def test_a_batch_of_city_records_is_booked_once_per_record(
        self, stack: Stack, person: Person
    ) -> None:
        later = new_id_number()

        def record(n: int, id_number: str, hours: float) -> LearningRecorded:
            return LearningRecorded(
                record_id=f"city-{uuid.uuid4().hex[:8]}-{n}",
                id_number=id_number,
                year=2026,
                subject="public" if n % 2 else "professional",
                hours=hours,
                course=f"课程{n}",
                completed_at=datetime(2026, 4, n + 1, tzinfo=UTC),
            )

        mine = [record(n, person.id_number, 1.5) for n in range(1, 5)]
        theirs = record(9, later, 2)
        first = LearningRecordedBatch(records=[*mine[:3], theirs])
        await stack.publish(SYNC, first, subject="batch-1")
        # a later chunk repeats a record (a resend upstream): it is booked once
        await stack.publish(SYNC, LearningRecordedBatch(records=mine[2:]), subject="batch-2")
        transcript = await stack.transcript(person.id)
        assert sorted(e["ref"] for e in transcript["entries"]) == sorted(r.record_id for r in mine)
        assert transcript["credited"]["public"] == 3 and transcript["credited"]["professional"] == 3
        r = await stack.http.post(
            "/v1/persons",
            json={
                "id_number": later,
                "name": "孙七",
                "affiliation": {"kind": "unit", "org_id": org(stack, "unit")},
            },
            headers=stack.city,
        )
        assert r.status_code == 201, r.text
        entries = (await stack.transcript(r.json()["id"]))["entries"]
        assert [(e["ref"], e["hours"]) for e in entries] == [(theirs.record_id, 2)]

    async def test_idempotency_key_replay_returns_the_first_result(
        self, stack: Stack, person: Person
    ) -> None:
        body = claim_of("study", await files(stack, person), hours=8)
        first = await post_claim(stack, person, body, **{"Idempotency-Key": "claim-once"})
        assert first.status_code == 201
        async with stack.no_new_state(person.id):
            again = await post_claim(stack, person, body, **{"Idempotency-Key": "claim-once"})
        assert again.status_code == 201 and again.json() == first.json()
        assert len(await stack.claims_of(person.id)) == 1
        # the key belongs to the caller: another person's same key is their own
        other = await stack.register(org(stack, "unit"))
        theirs = await post_claim(
            stack,
            other,
            claim_of("study", await files(stack, other), hours=8),
            **{"Idempotency-Key": "claim-once"},
        )
        assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]

    async def test_withdraw(self, stack: Stack, person: Person) -> None:
        evidence = await files(stack, person)
        claim = await stack.submit(person, claim_of("study", evidence, hours=8))
        r = await stack.http.post(f"/v1/claims/{claim['id']}/withdraw", headers=person.auth)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["stage"]) == ("withdrawn", None)
        assert [e.type for e in await stack.outbox(claim["id"])] == [
            "claim.submitted",
            "claim.withdrawn",
        ]
        assert (await stack.transcript(person.id))["pending"]["professional"] == 0
        # the withdrawn claim no longer holds its evidence
        again = await stack.submit(person, claim_of("study", evidence, hours=8))
        assert again["id"] != claim["id"]
        listed = await stack.http.get(
            "/v1/claims",
            params={"person_id": person.id, "status": "withdrawn"},
            headers=person.auth,
        )
        assert [c["id"] for c in listed.json()["items"]] == [claim["id"]]

    async def test_revision_after_rejection(self, stack: Stack, person: Person) -> None:
        evidence = await files(stack, person)
        claim = await stack.submit(person, claim_of("study", evidence, hours=8))
        rejected = await stack.reject(claim, "缺少单位学习档案")
        assert (rejected["status"], rejected["stage"]) == ("rejected", None)
        assert rejected["rejection_reason"] == "缺少单位学习档案"
        more = [*evidence, await stack.upload(person)]
        r = await stack.http.post(
            f"/v1/claims/{claim['id']}/revisions",
            json={"person_id": person.id, **claim_of("study", more, hours=6)},
            headers=person.auth,
        )
        assert r.status_code == 201, r.text
        revised = r.json()
        assert (revised["id"], revised["revision"]) == (claim["id"], 2)
        assert (revised["status"], revised["stage"]) == ("in_review", "unit")
        assert revised["expected_credits"] == [{"subject": "professional", "hours": 6}]
        assert revised["rejection_reason"] is None
        submitted = [e for e in await stack.outbox(claim["id"]) if e.type == "claim.submitted"]
        assert [e.data["revision"] for e in submitted] == [1, 2]
        # a late approval of revision 1 is stale; revision 2's approval counts
        assert (await stack.approve(claim, revision=1))["status"] == "in_review"
        approved = await stack.approve(revised)
        assert approved["status"] == "approved"
        assert approved["credits"] == [{"subject": "professional", "hours": 6}]

    async def test_freelancer_of_an_agency_can_claim(self, stack: Stack) -> None:
        freelancer = await stack.register(org(stack, "agency"), kind="agency")
        claim = await stack.submit(
            freelancer, claim_of("competition", await files(stack, freelancer))
        )
        [event] = await stack.outbox(claim["id"])
        assert event.data["affiliation"] == {"kind": "agency", "org_id": org(stack, "agency")}
