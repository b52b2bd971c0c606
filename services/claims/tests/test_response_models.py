"""Every JSON route of the claims service documents its 2xx answer as a named schema, and the
answers the service really sends are exactly that model (no field more, none less)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from services.claims import views
from services.claims.tests.harness import Stack, claims_stack, new_id_number

# the operations every service gets from libs.common (health, metrics, dead letters) are not
# the claims service's own
SHARED = ("/healthz", "/readyz", "/metrics", "/v1/admin/")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("views")) as s:
        yield s


def json_schema_of(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses = spec["paths"][path][method]["responses"]
    (ok,) = [r for code, r in responses.items() if code.startswith("2")]
    schema: dict[str, Any] = ok["content"]["application/json"]["schema"]
    return schema


async def test_every_json_route_names_its_2xx_schema(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    checked = 0
    for path, operations in spec["paths"].items():
        if path.startswith(SHARED):
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if not code.startswith("2") or "application/json" not in response["content"]:
                    continue
                ref = response["content"]["application/json"]["schema"].get("$ref", "")
                assert ref.startswith("#/components/schemas/"), (method, path, response)
                assert ref.split("/")[-1] in spec["components"]["schemas"]
                checked += 1
    assert checked >= 15


def exactly(model: type[BaseModel], body: Any) -> None:
    """``body`` is a valid ``model`` with no field beyond it (dumped back it is the same JSON)."""
    assert model.model_validate(body).model_dump(mode="json") == body


async def test_real_responses_are_their_documented_models(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    district = await stack.add_org("district")
    unit = await stack.add_org("unit", district)
    other = await stack.add_org("unit", district)
    person = await stack.register(unit)
    evidence_id = await stack.upload(person)
    claim = await stack.submit(
        person,
        {
            "year": 2026,
            "category": "study",
            "title": "单位组织学习",
            "hours": 8,
            "evidence_ids": [evidence_id],
        },
    )
    rejected = await stack.reject(claim, "材料不全")
    city = stack.city
    calls: list[tuple[str, str, str, dict[str, Any], type[BaseModel], int]] = [
        ("get", "/v1/persons/{person_id}", f"/v1/persons/{person.id}", {}, views.PersonView, 200),
        ("get", "/v1/me", "/v1/me", {}, views.MeView, 200),
        (
            "get",
            "/v1/persons/{person_id}/transcripts/{year}",
            f"/v1/persons/{person.id}/transcripts/2026",
            {},
            views.Transcript,
            200,
        ),
        (
            "get",
            "/v1/evidence/{evidence_id}",
            f"/v1/evidence/{evidence_id}",
            {},
            views.EvidenceView,
            200,
        ),
        ("get", "/v1/claims/{claim_id}", f"/v1/claims/{claim['id']}", {}, views.ClaimView, 200),
        ("get", "/v1/claims", f"/v1/claims?person_id={person.id}", {}, views.ClaimPage, 200),
        (
            "get",
            "/v1/reports/compliance",
            f"/v1/reports/compliance?year=2026&org_id={district}",
            {},
            views.ComplianceReport,
            200,
        ),
        (
            "get",
            "/v1/persons/{person_id}/title-readiness",
            f"/v1/persons/{person.id}/title-readiness?application_date=2026-12-10",
            {},
            views.TitleReadiness,
            200,
        ),
        (
            "post",
            "/v1/claims/{claim_id}/revisions",
            f"/v1/claims/{claim['id']}/revisions",
            {
                "person_id": person.id,
                "year": 2026,
                "category": "study",
                "title": "单位组织学习（补材料）",
                "hours": 8,
                "evidence_ids": [evidence_id],
            },
            views.ClaimView,
            201,
        ),
        (
            "post",
            "/v1/claims/{claim_id}/withdraw",
            f"/v1/claims/{claim['id']}/withdraw",
            {},
            views.ClaimView,
            200,
        ),
        (
            "post",
            "/v1/persons/{person_id}/transfer",
            f"/v1/persons/{person.id}/transfer",
            {"affiliation": {"kind": "unit", "org_id": other}},
            views.PersonView,
            200,
        ),
        (
            "post",
            "/v1/reminders/run",
            "/v1/reminders/run",
            {"year": 2026},
            views.ReminderRunView,
            200,
        ),
    ]
    assert rejected["status"] == "rejected"
    for method, path, url, body, model, status in calls:
        headers = person.auth if path in ("/v1/me", "/v1/claims/{claim_id}/revisions") else city
        if path == "/v1/claims/{claim_id}/withdraw":
            headers = person.auth
        if method == "get":
            response = await stack.http.get(url, headers=headers)
        else:
            response = await stack.http.post(url, json=body, headers=headers)
        assert response.status_code == status, (url, response.text)
        assert json_schema_of(spec, method, path)["$ref"].endswith("/" + model.__name__)
        exactly(model, response.json())
    # the creates, answered through the idempotency store, too
    registered = await stack.http.post(
        "/v1/persons",
        json={
            "id_number": new_id_number(),
            "name": "王五",
            "affiliation": {"kind": "unit", "org_id": unit},
        },
        headers={**city, "Idempotency-Key": "views-1"},
    )
    assert registered.status_code == 201, registered.text
    exactly(views.PersonView, registered.json())
    exactly(views.ClaimView, claim)
    uploaded = await stack.http.post(
        "/v1/evidence",
        files={"file": ("a.pdf", b"%PDF-1.4\n% views\n%%EOF\n", "application/pdf")},
        headers=person.auth,
    )
    exactly(views.EvidenceView, uploaded.json())
