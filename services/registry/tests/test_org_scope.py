"""The registry's org scope (issue 17, findings 3 and 4), through the API of a real app.

Finding 3: the registry authorised by ``org_id`` alone, so a ``personnel``, ``exam_center``,
``ops`` or ``unit_admin`` token carrying a provider's ``org_id`` read its filings, listed and
printed its trainees' certificates, and a ``unit_admin`` naming the provider issued certificates.
Now a token acts for an org only when its role fits the org's type (``libs.common.orgscope``):
every such request is answered like something outside the caller's scope, never with data.

Finding 4: once review deactivates the provider, its own token reads and writes nothing
(403 ``org_inactive``); the trainee keeps their certificate, the public its verification.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.registry.tests.support import Registry, new_id_number, project_body, registry_app
from services.registry.tests.test_certificates_api import certificates_of, rows, upload_json
from tests.support import assert_problem

# roles that carry the provider's org_id without being its provider (the attack of finding 3)
MISMATCHED = (
    "personnel",
    "exam_center",
    "ops",
    "unit_admin",
    "district_admin",
    "department_admin",
    "agency_admin",
)


@pytest.fixture(scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Registry]:
    data_dir: Path = tmp_path_factory.mktemp("registry-org-scope")
    async with registry_app(data_dir) as r:
        yield r


async def issued(registry: Registry, org: str) -> tuple[dict[str, Any], str, str]:
    """An approved project of ``org`` with one certificate: (project, code, holder's person id)."""
    project = await registry.file(org)
    assert (await registry.submit(project, org)).status_code == 200
    assert (await registry.decide(project, "approve", "同意备案")).status_code == 200
    holder = new_id_number()
    r = await upload_json(registry, project, rows((holder, "张三", 16, True)), org=org)
    assert r.status_code == 200 and r.json()["issued"] == 1, r.text
    return project, r.json()["results"][0]["certificate_code"], await registry.add_person(holder)


def reads(project: dict[str, Any], code: str) -> list[str]:
    pid = project["id"]
    return [
        f"/v1/projects/{pid}",
        f"/v1/projects/{pid}/history",
        f"/v1/projects/{pid}/form.pdf",
        f"/v1/certificates?project_id={pid}",
        f"/v1/certificates/{code}/pdf",
    ]


def token(registry: Registry, role: str, org: str) -> dict[str, str]:
    sub = {"person_id": "no-such-person"} if role == "personnel" else {}
    minted = registry.app.state.tokens.mint(role=role, org_id=registry.orgs[org], **sub)
    return {"Authorization": f"Bearer {minted}"}


@pytest.mark.parametrize("role", MISMATCHED)
async def test_a_token_naming_a_provider_without_its_role_sees_and_issues_nothing(
    registry: Registry, role: str
) -> None:
    project, code, _ = await issued(registry, "P")
    stranger = token(registry, role, "P")
    for path in reads(project, code):
        r = await registry.http.get(path, headers=stranger)
        assert r.status_code == 404, (role, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await registry.http.get("/v1/projects", headers=stranger)
    assert project["id"] not in r.text
    # a unit_admin (or any other role) naming the provider issues no certificate
    before = await certificates_of(registry, project["id"])
    r = await registry.http.post(
        f"/v1/projects/{project['id']}/completions",
        json=rows((new_id_number(), "李四", 16, True)),
        headers=stranger,
    )
    assert r.status_code == 404, r.text
    assert await certificates_of(registry, project["id"]) == before
    for method, path in [("put", ""), ("post", "/submit")]:
        r = await registry.http.request(
            method.upper(),
            f"/v1/projects/{project['id']}{path}",
            json=project_body(registry.orgs["P"]) if method == "put" else None,
            headers=stranger,
        )
        assert r.status_code in (403, 404), (method, path, r.text)
    r = await registry.http.post(
        "/v1/projects", json=project_body(registry.orgs["P"]), headers=stranger
    )
    assert r.status_code == 403, r.text
    # the provider itself reads all of it
    own = registry.auth("provider", "P")
    for path in reads(project, code):
        assert (await registry.http.get(path, headers=own)).status_code == 200, path


async def test_an_exam_center_token_naming_another_org_issues_and_reads_no_card(
    registry: Registry,
) -> None:
    card = {"id_number": new_id_number(), "name": "周九", "year": 2026, "hours": 12}
    r = await registry.http.post(
        "/v1/exam-cards", json=card, headers=registry.auth("exam_center", "X")
    )
    assert r.status_code == 201, r.text
    card_no = r.json()["card_no"]
    for org in ("P", "U"):
        posing = registry.auth("exam_center", org)
        again = {**card, "id_number": new_id_number()}
        r = await registry.http.post("/v1/exam-cards", json=again, headers=posing)
        assert_problem(r, 403, "role_not_allowed")
    # an exam centre the registry does not know yet (its org.upserted is on the way): retry
    unknown = registry.auth("exam_center", "not-yet-replicated")
    r = await registry.http.post("/v1/exam-cards", json=card, headers=unknown)
    assert_problem(r, 422, "unknown_org")
    # a token carrying the exam centre's org_id without its role sees no card
    for role in ("provider", "unit_admin"):
        r = await registry.http.get(f"/v1/exam-cards/{card_no}", headers=registry.auth(role, "X"))
        assert r.status_code in (403, 404), r.text
        assert str(card["id_number"]) not in r.text


async def test_a_deactivated_provider_reads_and_writes_nothing(registry: Registry) -> None:
    await registry.add_org("P4", "provider", "C")
    project, code, holder = await issued(registry, "P4")
    draft = await registry.file("P4")
    own = registry.auth("provider", "P4")
    for path in [*reads(project, code), "/v1/projects"]:
        assert (await registry.http.get(path, headers=own)).status_code == 200, path

    await registry.add_org("P4", "provider", "C", active=False)  # review's org.upserted

    for path in [*reads(project, code), "/v1/projects"]:
        r = await registry.http.get(path, headers=own)
        assert_problem(r, 403, "org_inactive")
    before = await certificates_of(registry, project["id"])
    writes = [
        ("POST", "/v1/projects", project_body(registry.orgs["P4"])),
        ("PUT", f"/v1/projects/{draft['id']}", project_body(registry.orgs["P4"])),
        ("POST", f"/v1/projects/{draft['id']}/submit", None),
        (
            "POST",
            f"/v1/projects/{project['id']}/completions",
            rows((new_id_number(), "李四", 16, True)),
        ),
    ]
    for method, path, body in writes:
        r = await registry.http.request(method, path, json=body, headers=own)
        assert_problem(r, 403, "org_inactive")
    assert await certificates_of(registry, project["id"]) == before
    # the trainee keeps the certificate, the public its verification, the city everything
    me = registry.auth("personnel", person_id=holder)
    assert (await registry.http.get(f"/v1/certificates/{code}/pdf", headers=me)).status_code == 200
    assert (await registry.http.get(f"/v1/certificates/{code}")).json()["status"] == "valid"
    r = await registry.http.get(f"/v1/projects/{project['id']}", headers=registry.city)
    assert r.status_code == 200

    await registry.add_org("P4", "provider", "C")  # reactivated
    for path in reads(project, code):
        assert (await registry.http.get(path, headers=own)).status_code == 200, path
