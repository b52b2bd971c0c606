"""The certificate path of the README, end to end through HTTP on both runtimes: a provider files
a project → the city bureau approves it → the provider uploads completions → the trainee finds the
certificate, cites its code in a training claim → the reviewers see verified evidence → approved;
the city revokes the certificate → the credit is revoked. And the exam centre's card backs exactly
one exam-staff claim."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pypdf
import pytest

from ce.demo import load_demo
from ce.topology import SERVICES
from libs.common.settings import Settings
from tests.e2e.stack import Stack, start_distributed, start_embedded
from tests.e2e.walkthrough import ID_NUMBER, bearer, decide, open_task, setup_world, submit_training
from tests.fixtures.broker import Broker
from tests.support import eventually

pytestmark = pytest.mark.e2e

PROJECT = {
    "year": 2026,
    "address": "枣庄市薛城区复元三路1号",
    "name": "数字化管理师（初级）培训班",
    "person_in_charge": "王主任",
    "contact_name": "李老师",
    "contact_phone": "13806320000",
    "advanced_seminar": False,
    "plan": "数字化管理概论；数字化转型实务；考核",
    "target_trainees": "企事业单位专业技术人员",
    "planned_participants": 60,
    "start_date": "2026-11-02",
    "end_date": "2026-11-03",
    "days": 2,
    "planned_hours": 16,
    "venue": "枣庄学院",
    "form": "offline",
    "kind": "digital_manager",
    "level": "junior",
}


def org(stack: Stack, http: httpx.Client, code: str, name: str, type_: str) -> str:
    r = http.post(
        f"{stack.url('review')}/v1/orgs",
        headers=bearer(stack.token("city_admin")),
        json={"code": code, "name": name, "type": type_},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def file_and_approve(stack: Stack, http: httpx.Client, provider_id: str) -> dict[str, Any]:
    registry, provider = stack.url("registry"), bearer(stack.token("provider", org_id=provider_id))

    def filed() -> httpx.Response | None:
        # the provider org reaches the registry as an event: retry while it is on its way
        r = http.post(
            f"{registry}/v1/projects",
            headers=provider,
            json={**PROJECT, "applicant_org_id": provider_id},
        )
        return None if r.status_code == 422 and r.json()["code"] == "unknown_org" else r

    project = eventually(filed, what="org replica in registry")
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    r = http.post(f"{registry}/v1/projects/{project_id}/submit", headers=provider)
    assert r.status_code == 200, r.text
    r = http.post(
        f"{registry}/v1/projects/{project_id}/decision",
        headers=bearer(stack.token("city_admin")),
        json={"decision": "approve", "opinion": "同意备案"},
    )
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    return dict(r.json())


def certificate_path(stack: Stack, suffix: str = "") -> None:
    with stack.client(timeout=15) as http:
        world = setup_world(stack, http, suffix=suffix)
        provider_id = org(stack, http, f"P-ZZU{suffix}", "枣庄学院继续教育基地", "provider")
        project = file_and_approve(stack, http, provider_id)
        registry, claims = stack.url("registry"), stack.url("claims")
        provider = bearer(stack.token("provider", org_id=provider_id))

        roster = [
            {"id_number": ID_NUMBER, "name": "张三", "hours": 16, "passed": True},
            {"id_number": "110105194912310021", "name": "坏号码", "hours": 16, "passed": True},
        ]
        r = http.post(
            f"{registry}/v1/projects/{project['id']}/completions", headers=provider, json=roster
        )
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == ["issued", "rejected"]
        code = r.json()["results"][0]["certificate_code"]

        # the trainee finds it (matched by ID number) and downloads the PDF
        me = bearer(world.personnel)

        def mine() -> list[dict[str, Any]] | None:
            items = http.get(
                f"{registry}/v1/certificates", params={"mine": "true"}, headers=me
            ).json()["items"]
            return list(items) or None

        assert [c["code"] for c in eventually(mine, what="person replica in registry")] == [code]
        pdf = http.get(f"{registry}/v1/certificates/{code}/pdf", headers=me)
        assert pdf.status_code == 200
        text = pypdf.PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
        assert f"{registry}/v1/certificates/{code}" in text  # the URL its QR code carries
        public = http.get(f"{registry}/v1/certificates/{code}").json()
        assert public["status"] == "valid" and ID_NUMBER not in str(public)

        def submitted() -> dict[str, Any] | None:
            try:  # the certificate reaches claims as an event: retry while it is on its way
                return submit_training(stack, http, world, project["name"], certificate_code=code)
            except AssertionError:
                return None

        claim = eventually(submitted, what="certificate replica in claims")
        assert claim["expected_credits"] == [{"subject": "professional", "hours": 16.0}]
        task = open_task(stack, http, world.unit_admin, claim["id"], "unit")
        [item] = http.get(
            f"{stack.url('review')}/v1/review-tasks",
            params={"claim_id": claim["id"], "status": "open"},
            headers=bearer(world.unit_admin),
        ).json()["items"]
        assert item["verified_evidence"] is True
        assert item["references"]["certificate_code"] == code

        # the reviewers see the certificate's project and its filing status (from the registry)
        def project_shown() -> dict[str, Any] | None:
            r = http.get(
                f"{stack.url('review')}/v1/review-tasks/{item['id']}",
                headers=bearer(world.unit_admin),
            )
            shown = r.json()["project"]
            return dict(shown) if shown["status"] != "unknown" else None

        shown = eventually(project_shown, what="project replica in review")
        assert (shown["id"], shown["name"], shown["status"]) == (
            project["id"],
            project["name"],
            "approved",
        )
        decide(stack, http, world.unit_admin, task, "approve")
        decide(
            stack,
            http,
            world.district_admin,
            open_task(stack, http, world.district_admin, claim["id"], "authority"),
            "approve",
        )

        def status() -> str:
            return str(http.get(f"{claims}/v1/claims/{claim['id']}", headers=me).json()["status"])

        eventually(lambda: status() == "approved", what="claim approved")

        # the city revokes the certificate: the credit that rested on it is revoked
        r = http.post(
            f"{registry}/v1/certificates/{code}/revoke",
            headers=bearer(stack.token("city_admin")),
            json={"reason": "培训签到造假"},
        )
        assert r.status_code == 200, r.text
        eventually(lambda: status() == "revoked", what="claim revoked")
        transcript = http.get(
            f"{claims}/v1/persons/{world.person_id}/transcripts/2026", headers=me
        ).json()
        assert transcript["credited"]["professional"] == 0

        exam_card_backs_one_claim(stack, http, world.personnel, world.person_id, suffix)


def exam_card_backs_one_claim(
    stack: Stack, http: httpx.Client, personnel: str, person_id: str, suffix: str
) -> None:
    exam_id = org(stack, http, f"EXAM-ZZ{suffix}", "枣庄市人事考试中心", "exam_center")

    def issued() -> httpx.Response | None:
        # the exam centre reaches the registry as an event: retry while it is on its way
        r = http.post(
            f"{stack.url('registry')}/v1/exam-cards",
            headers=bearer(stack.token("exam_center", org_id=exam_id)),
            json={"id_number": ID_NUMBER, "name": "张三", "year": 2026, "hours": 12},
        )
        return None if r.status_code == 422 and r.json()["code"] == "unknown_org" else r

    r = eventually(issued, what="exam card issued")
    assert r.status_code == 201, r.text
    card_no = r.json()["card_no"]
    body = {
        "person_id": person_id,
        "year": 2026,
        "category": "exam_staff",
        "title": "2026年度专业技术人员职业资格考试监考",
        "exam_card_no": card_no,
        "evidence_ids": [],
    }
    claims = f"{stack.url('claims')}/v1/claims"

    def first() -> dict[str, Any] | None:
        r = http.post(claims, headers=bearer(personnel), json=body)
        if r.status_code == 422 and r.json()["code"] == "unknown_exam_card":
            return None  # the card is on its way to claims
        assert r.status_code == 201, r.text
        return dict(r.json())

    claim = eventually(first, what="exam card replica in claims")
    assert claim["expected_credits"] == [{"subject": "professional", "hours": 12.0}]
    again = http.post(claims, headers=bearer(personnel), json={**body, "title": "再次申报"})
    assert again.status_code == 422 and again.json()["code"] == "duplicate_evidence", again.text


def demo_data_has_the_certificate_path(stack: Stack) -> None:
    """``ce run --demo``'s loader files and approves a project and issues certificates."""
    load_demo({name: stack.url(name) for name in SERVICES}, Settings(data_dir=stack.data_dir))
    city = bearer(stack.token("city_admin"))
    with stack.client(timeout=15) as http:
        registry = stack.url("registry")
        projects = http.get(f"{registry}/v1/projects", params={"status": "approved"}, headers=city)
        [project] = projects.json()["items"]
        assert project["kind"] == "digital_manager" and project["opinion"] == "同意备案"
        certificates = http.get(
            f"{registry}/v1/certificates", params={"project_id": project["id"]}, headers=city
        ).json()["items"]
        assert sorted(c["holder_name"] for c in certificates) == ["李明", "王芳"]
        for cert in certificates:
            public = http.get(f"{registry}/v1/certificates/{cert['code']}").json()
            assert public["status"] == "valid"


def test_certificate_path_embedded(tmp_path: Path) -> None:
    stack = start_embedded(tmp_path / "var")
    try:
        stack.wait_healthy()
        demo_data_has_the_certificate_path(stack)
        certificate_path(stack, suffix="-e2e")
    finally:
        codes = stack.stop()
    assert codes == [0], stack.tail()


@pytest.mark.postgres
@pytest.mark.kafka
def test_certificate_path_distributed(
    tmp_path: Path, make_pg_database: Callable[[str], str], kafka_broker: Broker
) -> None:
    urls = {name: make_pg_database(name) for name in ("claims", "review", "registry", "sync")}
    stack = start_distributed(tmp_path / "var", urls, kafka_broker.bootstrap)
    try:
        stack.wait_healthy(timeout_s=90)
        certificate_path(stack)
    finally:
        codes = stack.stop()
    assert all(c == 0 for c in codes), stack.tail()
