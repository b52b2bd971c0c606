"""The authorization matrix, generated from the routes of every service (their OpenAPI documents):
every route × every role × an own, a sibling, a parent's and an unrelated org's person (each with a
claim, its evidence and its review task). A request aimed at something outside the caller's scope
gets 401/403/404 (or 405/409/422, which carry no data), never a 2xx, never a 5xx; and no answer of
any kind carries an identifier of a person outside the caller's scope (person, claim, evidence and
task ids, ID numbers, names) unless the caller sent it. All four services run in-process on one
event loop, sharing the embedded event log, so the seed data flows between them as in production."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ce.topology import SERVICES, app_module
from libs.common.auth import load_or_create_dev_key
from libs.common.settings import Settings
from services.registry.tests.support import project_body
from tests.reliability.harness import id_number_of, pdf_of
from tests.support import assert_problem, until

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

YEAR = 2026
NO_DATA = {401, 403, 404, 405, 409, 422}
# routes only some roles may call at all; everyone else gets 401/403 (or 422)
ROLE_GATED: dict[tuple[str, str], set[str]] = {
    ("post", "/v1/orgs"): {"city_admin"},
    ("get", "/v1/admin/dead-letters"): {"city_admin", "ops"},
    ("post", "/v1/reconciliations"): {"city_admin", "ops"},
    ("get", "/v1/sync/summary"): {"city_admin", "ops"},
    ("get", "/v1/sync/records"): {"city_admin", "ops", "system"},
    ("post", "/v1/learning-records"): {"system"},
}
PUBLIC = {"/healthz", "/readyz", "/metrics"}
# the org directory: every signed-in user reads it (people pick their unit), no person data in it
DIRECTORY = {"/v1/orgs/{org_id}", "/v1/orgs"}


@dataclass
class Party:
    """One person with everything of theirs: the targets of the matrix."""

    label: str
    org_key: str
    id_number: str
    name: str
    person_id: str = ""
    claim_id: str = ""
    evidence_id: str = ""
    task_id: str = ""

    def secrets(self) -> set[str]:
        return {
            self.person_id,
            self.claim_id,
            self.evidence_id,
            self.task_id,
            self.id_number,
            self.name,
        }


@dataclass
class Principal:
    label: str
    role: str
    token: str
    in_scope: set[str]  # labels of the parties this principal may see


@dataclass
class World:
    apps: dict[str, httpx.AsyncClient]
    orgs: dict[str, str]
    parties: dict[str, Party]
    principals: list[Principal] = field(default_factory=list)
    tokens: Any = None  # the services' token minter


async def _start(
    stack: AsyncExitStack, data_dir: Path, **overrides: Any
) -> tuple[dict[str, FastAPI], dict[str, httpx.AsyncClient]]:
    apps: dict[str, FastAPI] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    for name in SERVICES:
        settings = Settings(service=name, data_dir=data_dir, outbox_poll_s=0.1, **overrides)
        app: FastAPI = app_module(name).create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
        clients[name] = await stack.enter_async_context(client)
        apps[name] = app
    return apps, clients


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _seed(apps: dict[str, FastAPI], http: dict[str, httpx.AsyncClient]) -> World:
    tokens = apps["claims"].state.tokens
    city = bearer(tokens.mint(role="city_admin"))
    orgs: dict[str, str] = {}
    tree = [
        ("A", "district", None),
        ("A1", "unit", "A"),
        ("A2", "unit", "A"),
        ("B", "district", None),
        ("B1", "unit", "B"),
    ]
    for key, kind, parent in tree:
        body: dict[str, Any] = {"code": f"matrix-{key}", "name": f"机构{key}", "type": kind}
        if parent:
            body["parent_id"] = orgs[parent]
        r = await http["review"].post("/v1/orgs", json=body, headers=city)
        assert r.status_code == 201, r.text
        orgs[key] = r.json()["id"]
    parties = {
        "own": Party("own", "A1", id_number_of(1), "甲本人"),
        "sibling": Party("sibling", "A2", id_number_of(2), "乙同级"),
        "unrelated": Party("unrelated", "B1", id_number_of(3), "丙无关"),
    }
    for party in parties.values():
        admin = bearer(tokens.mint(role="unit_admin", org_id=orgs[party.org_key]))

        async def register(party: Party = party, admin: dict[str, str] = admin) -> Any:
            r = await http["claims"].post(
                "/v1/persons",
                headers=admin,
                json={
                    "id_number": party.id_number,
                    "name": party.name,
                    "affiliation": {"kind": "unit", "org_id": orgs[party.org_key]},
                },
            )
            return r if r.status_code == 201 else None

        party.person_id = (await until(register, timeout_s=20)).json()["id"]
        me = bearer(tokens.mint(role="personnel", person_id=party.person_id))
        e = await http["claims"].post(
            "/v1/evidence",
            headers=me,
            files={"file": ("c.pdf", pdf_of(hash(party.label) % 1000), "application/pdf")},
        )
        assert e.status_code == 201, e.text
        party.evidence_id = e.json()["id"]
        c = await http["claims"].post(
            "/v1/claims",
            headers=me,
            json={
                "person_id": party.person_id,
                "year": YEAR,
                "category": "training",
                "title": f"{party.name}的培训",
                "hours": 8,
                "start_date": "2026-05-06",
                "end_date": "2026-05-06",
                "reference_no": "鲁卫继备〔2026〕15号",
                "evidence_ids": [party.evidence_id],
            },
        )
        assert c.status_code == 201, c.text
        party.claim_id = c.json()["id"]

        async def task(party: Party = party, admin: dict[str, str] = admin) -> str | None:
            r = await http["review"].get(
                "/v1/review-tasks", headers=admin, params={"claim_id": party.claim_id}
            )
            items = r.json()["items"] if r.status_code == 200 else []
            return items[0]["id"] if items else None

        party.task_id = await until(task, timeout_s=20)
    world = World(http, orgs, parties, tokens=tokens)
    mint = tokens.mint
    world.principals = [
        Principal("city_admin", "city_admin", mint(role="city_admin"), set(parties)),
        Principal(
            "district A (parent)",
            "district_admin",
            mint(role="district_admin", org_id=orgs["A"]),
            {"own", "sibling"},
        ),
        Principal(
            "unit A1 (own)", "unit_admin", mint(role="unit_admin", org_id=orgs["A1"]), {"own"}
        ),
        Principal(
            "unit A2 (sibling)",
            "unit_admin",
            mint(role="unit_admin", org_id=orgs["A2"]),
            {"sibling"},
        ),
        Principal(
            "district B (unrelated)",
            "district_admin",
            mint(role="district_admin", org_id=orgs["B"]),
            {"unrelated"},
        ),
        Principal(
            "department", "department_admin", mint(role="department_admin", org_id=orgs["B"]), set()
        ),
        Principal("agency", "agency_admin", mint(role="agency_admin", org_id=orgs["A"]), set()),
        Principal("provider", "provider", mint(role="provider", org_id=orgs["A1"]), set()),
        Principal("exam_center", "exam_center", mint(role="exam_center", org_id=orgs["A1"]), set()),
        Principal(
            "personnel (own)",
            "personnel",
            mint(role="personnel", person_id=parties["own"].person_id),
            {"own"},
        ),
        Principal("system", "system", mint(role="system"), set()),
        Principal("ops", "ops", mint(role="ops"), set()),
    ]
    return world


def _path_value(param: str, party: Party, orgs: dict[str, str]) -> str:
    """The party's object for the parameter; one the matrix does not seed (registry projects,
    certificates, ...) gets an id that names nothing, which must still never answer with data."""
    return {
        "person_id": party.person_id,
        "claim_id": party.claim_id,
        "evidence_id": party.evidence_id,
        "task_id": party.task_id,
        "org_id": orgs[party.org_key],
        "year": str(YEAR),
    }.get(param, f"matrix-none-{param}")


def _body(method: str, path: str, party: Party, orgs: dict[str, str]) -> dict[str, Any] | None:
    """A well-formed body aimed at ``party``, so the request reaches the scope check."""
    if method != "post":
        return None
    bodies: dict[str, dict[str, Any]] = {
        "/v1/persons": {
            "id_number": id_number_of(900),
            "name": "冒名者",
            "affiliation": {"kind": "unit", "org_id": orgs[party.org_key]},
        },
        "/v1/persons/{person_id}/transfer": {
            "affiliation": {"kind": "unit", "org_id": orgs["A1"]},
        },
        "/v1/claims": {
            "person_id": party.person_id,
            "year": YEAR,
            "category": "training",
            "title": "越权申报",
            "hours": 8,
            "start_date": "2026-05-07",
            "end_date": "2026-05-07",
            "reference_no": "鲁卫继备〔2026〕15号",
            "evidence_ids": [party.evidence_id],
        },
        "/v1/claims/{claim_id}/revisions": {
            "person_id": party.person_id,
            "year": YEAR,
            "category": "training",
            "title": "越权修改",
            "hours": 8,
            "start_date": "2026-05-07",
            "end_date": "2026-05-07",
            "reference_no": "鲁卫继备〔2026〕15号",
            "evidence_ids": [party.evidence_id],
        },
        "/v1/review-tasks/{task_id}/decision": {"decision": "approve"},
        "/v1/review-tasks/decisions": {"task_ids": [party.task_id], "decision": "approve"},
        "/v1/orgs": {"code": "matrix-x", "name": "越权机构", "type": "district"},
        "/v1/reconciliations": {"year": YEAR},
        "/v1/learning-records": {
            "records": [
                {
                    "record_id": "matrix-1",
                    "id_number": party.id_number,
                    "year": YEAR,
                    "subject": "public",
                    "hours": 1,
                    "course": "课",
                    "completed_at": "2026-06-01T10:00:00+08:00",
                }
            ]
        },
        "/v1/reminders/run": {},
    }
    return bodies.get(path, {})


def _query(params: list[str], party: Party, orgs: dict[str, str]) -> dict[str, str]:
    values = {
        "person_id": party.person_id,
        "claim_id": party.claim_id,
        "org_id": orgs[party.org_key],
        "parent_id": orgs[party.org_key],
        "year": str(YEAR),
    }
    return {p: values[p] for p in params if p in values}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    load_or_create_dev_key(tmp_path)
    async with AsyncExitStack() as stack:
        apps, clients = await _start(stack, tmp_path)
        yield await _seed(apps, clients)


@dataclass
class Matrix:
    routes: int = 0
    cells: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)

    def record(
        self, where: str, r: httpx.Response, *, targeted: bool, sent: str, forbidden: set[str]
    ) -> None:
        """A targeted request answers no 2xx, none a 5xx, and no answer shows a forbidden
        value the request did not send itself."""
        self.cells += 1
        self.outcomes[str(r.status_code)] += 1
        if r.status_code >= 500 or (targeted and r.status_code not in NO_DATA):
            self.leaks.append(f"{where}: {r.status_code} {r.text[:200]}")
            return
        words = set(re.findall(r"[\w-]+", sent))
        shown = [s for s in forbidden - words if s and s in r.text]
        if shown:
            self.leaks.append(f"{where}: {r.status_code} shows {shown}: {r.text[:200]}")

    def report(self, title: str, principals: list[Principal], size: str) -> None:
        print(
            f"\nRELIABILITY {title} ({', '.join(p.label for p in principals)}): {size} -> "
            f"{self.cells} requests checked; statuses {dict(self.outcomes)}"
        )


async def _routes(world: World) -> list[tuple[str, str, str, list[str], list[str]]]:
    """Every operation of every service, from its own OpenAPI document."""
    routes = []
    for name, client in world.apps.items():
        document = (await client.get("/openapi.json")).json()
        for path, operations in document["paths"].items():
            for method, op in operations.items():
                params = op.get("parameters", [])
                in_path = [p["name"] for p in params if p["in"] == "path"]
                in_query = [p["name"] for p in params if p["in"] == "query"]
                routes.append((name, method, path, in_path, in_query))
    return routes


async def run_matrix(world: World, principals: list[Principal]) -> Matrix:
    routes = await _routes(world)
    matrix = Matrix(routes=len(routes))
    for principal in principals:
        forbidden = set().union(
            *(p.secrets() for p in world.parties.values() if p.label not in principal.in_scope)
        )
        for party in world.parties.values():
            out_of_scope = party.label not in principal.in_scope
            for name, method, path, in_path, in_query in routes:
                if path in PUBLIC or path in DIRECTORY:
                    continue
                gated = ROLE_GATED.get((method, path))
                if (not out_of_scope and not gated) or (gated and principal.role in gated):
                    continue  # allowed: not the matrix's business (and it may mutate)
                url = path
                for param in in_path:
                    url = url.replace("{" + param + "}", _path_value(param, party, world.orgs))
                body = _body(method, path, party, world.orgs)
                query = _query(in_query, party, world.orgs)
                r = await world.apps[name].request(
                    method.upper(), url, params=query, json=body, headers=bearer(principal.token)
                )
                # /v1/me/...: the caller's own things, whatever else it names; only the
                # never-data check applies
                self_scoped = path.startswith("/v1/me/") or path == "/v1/me"
                targeted = not self_scoped and (
                    bool(in_path) or method == "post" or gated is not None
                )
                matrix.record(
                    f"{principal.label} {method.upper()} {name}{url} -> {party.label}",
                    r,
                    targeted=targeted and not _bulk_refused(path, r),
                    sent=url + json.dumps(body or {}) + json.dumps(query),
                    forbidden=forbidden,
                )
    matrix.report(
        "authorization matrix",
        principals,
        f"{matrix.routes} routes x {len(principals)} principals x {len(world.parties)} parties",
    )
    return matrix


async def test_every_route_every_role_every_org_relation_out_of_scope_is_never_data(
    world: World,
) -> None:
    principals = [p for p in world.principals if p.role != "system"]
    matrix = await run_matrix(world, principals)
    assert not matrix.leaks, "\n".join(matrix.leaks)
    assert matrix.routes > 30 and matrix.cells > 300


async def test_the_city_platform_integration_token_sees_no_person_data(world: World) -> None:
    [system] = [p for p in world.principals if p.role == "system"]
    matrix = await run_matrix(world, [system])
    assert not matrix.leaks, "\n".join(matrix.leaks)
    assert matrix.cells > 50


def _bulk_refused(path: str, response: httpx.Response) -> bool:
    """The bulk decision answers 200 with a result per task: every one must be a refusal."""
    if path != "/v1/review-tasks/decisions" or response.status_code != 200:
        return False
    results = response.json().get("results", [])
    return bool(results) and all(item.get("status") in NO_DATA for item in results)


# --- the registry: tokens that name a provider without being it (issue 17, finding 3) --------

# the public certificate lookup answers anyone (masked); everything else of the registry is scoped
REGISTRY_PUBLIC = {"/v1/certificates/{code}"}
# roles that are not a provider's, carrying a provider's org_id (the attack of finding 3)
NOT_PROVIDER_ROLES = (
    "ops",
    "system",
    "unit_admin",
    "agency_admin",
    "district_admin",
    "department_admin",
)


@dataclass
class Filing:
    """What the registry matrix aims at: a provider's approved project, the certificate it
    issued to the own party, and an exam centre's card."""

    provider: str
    exam_center: str
    project_id: str
    code: str
    card_no: str
    card_holder: str

    def values(self) -> dict[str, str]:
        return {
            "project_id": self.project_id,
            "applicant_org_id": self.provider,
            "code": self.code,
            "card_no": self.card_no,
        }

    def secrets(self, holder: Party) -> set[str]:
        return {self.project_id, self.code, self.card_no, self.card_holder, *holder.secrets()}


async def _org(world: World, key: str, kind: str) -> str:
    city = bearer(world.tokens.mint(role="city_admin"))
    body = {"code": f"matrix-{key}", "name": f"机构{key}", "type": kind}
    r = await world.apps["review"].post("/v1/orgs", json=body, headers=city)
    assert r.status_code == 201, r.text
    world.orgs[key] = r.json()["id"]
    return str(world.orgs[key])


async def _file(world: World, org_key: str, role: str) -> str:
    """A draft filing of the org, once the org has reached the registry (an event)."""
    applicant = bearer(world.tokens.mint(role=role, org_id=world.orgs[org_key]))

    async def filed() -> str | None:
        r = await world.apps["registry"].post(
            "/v1/projects", json=project_body(world.orgs[org_key]), headers=applicant
        )
        return str(r.json()["id"]) if r.status_code == 201 else None

    return str(await until(filed, timeout_s=20))


async def _seed_registry(world: World) -> Filing:
    registry, own = world.apps["registry"], world.parties["own"]
    city = bearer(world.tokens.mint(role="city_admin"))
    provider_id = await _org(world, "P", "provider")
    exam_id = await _org(world, "X", "exam_center")
    provider = bearer(world.tokens.mint(role="provider", org_id=provider_id))
    project_id = await _file(world, "P", "provider")
    assert (await registry.post(f"/v1/projects/{project_id}/submit", headers=provider)).is_success
    r = await registry.post(
        f"/v1/projects/{project_id}/decision",
        json={"decision": "approve", "opinion": "同意"},
        headers=city,
    )
    assert r.status_code == 200, r.text
    r = await registry.post(
        f"/v1/projects/{project_id}/completions",
        json=[{"id_number": own.id_number, "name": own.name, "hours": 16, "passed": True}],
        headers=provider,
    )
    assert r.status_code == 200 and r.json()["issued"] == 1, r.text
    code = r.json()["results"][0]["certificate_code"]
    card_holder = id_number_of(4)
    exam = bearer(world.tokens.mint(role="exam_center", org_id=exam_id))

    async def card() -> str | None:  # the exam centre reaches the registry as an event
        body = {"id_number": card_holder, "name": "丁考务", "year": YEAR, "hours": 6}
        r = await registry.post("/v1/exam-cards", json=body, headers=exam)
        return str(r.json()["card_no"]) if r.status_code == 201 else None

    card_no = await until(card, timeout_s=20)
    return Filing(provider_id, exam_id, project_id, code, card_no, card_holder)


def _registry_body(method: str, path: str, filing: Filing) -> Any:
    if method not in ("post", "put"):
        return None
    bodies: dict[str, Any] = {
        "/v1/projects": project_body(filing.provider),
        "/v1/projects/{project_id}": project_body(filing.provider),
        "/v1/projects/{project_id}/decision": {"decision": "approve", "opinion": "越权"},
        "/v1/projects/{project_id}/completions": [
            {"id_number": id_number_of(901), "name": "冒名者", "hours": 16, "passed": True}
        ],
        "/v1/certificates/{code}/revoke": {"reason": "越权撤销"},
        "/v1/exam-cards": {
            "id_number": id_number_of(902),
            "name": "冒名者",
            "year": YEAR,
            "hours": 6,
        },
    }
    return bodies.get(path, {})


async def run_registry_matrix(world: World, filing: Filing, principals: list[Principal]) -> Matrix:
    """Every registry route (its OpenAPI document) for every principal, aimed at the filing: a
    targeted request is never a 2xx; no answer shows the filing's ids or the holders' data."""
    routes = [r for r in await _routes(world) if r[0] == "registry"]
    matrix = Matrix(routes=len(routes))
    forbidden = filing.secrets(world.parties["own"])
    values = filing.values()
    for principal in principals:
        for _, method, path, in_path, in_query in routes:
            if path in PUBLIC or path in REGISTRY_PUBLIC:
                continue
            url = path
            for param in in_path:
                url = url.replace("{" + param + "}", values.get(param, f"matrix-none-{param}"))
            body = _registry_body(method, path, filing)
            query = {p: values[p] for p in in_query if p in values}
            r = await world.apps["registry"].request(
                method.upper(), url, params=query, json=body, headers=bearer(principal.token)
            )
            matrix.record(
                f"{principal.label} {method.upper()} registry{url} {query}",
                r,
                targeted=bool(in_path) or method in ("post", "put"),
                sent=url + json.dumps(body or {}) + json.dumps(query),
                forbidden=forbidden,
            )
    matrix.report(
        "registry matrix", principals, f"{matrix.routes} routes x {len(principals)} principals"
    )
    return matrix


async def test_registry_tokens_naming_a_provider_without_its_role_get_no_data(
    world: World,
) -> None:
    """A personnel, exam_center, ops, unit_admin (or any other admin) token carrying the
    provider's org_id, a provider token carrying the exam centre's: no filing, certificate, PDF
    or card, and nothing written (the roster upload of a unit_admin naming the provider issued
    a certificate worth 16 hours before)."""
    filing = await _seed_registry(world)
    mint = world.tokens.mint
    posing = [
        Principal(f"{role} naming provider P", role, mint(role=role, org_id=filing.provider), set())
        for role in NOT_PROVIDER_ROLES
    ]
    posing += [
        Principal(
            "personnel naming provider P",
            "personnel",
            mint(role="personnel", sub="matrix-login", org_id=filing.provider),
            set(),
        ),
        Principal(
            "provider naming exam centre X",
            "provider",
            mint(role="provider", org_id=filing.exam_center),
            set(),
        ),
        Principal(
            "exam_center naming provider P",
            "exam_center",
            mint(role="exam_center", org_id=filing.provider),
            set(),
        ),
    ]
    matrix = await run_registry_matrix(world, filing, posing)
    assert not matrix.leaks, "\n".join(matrix.leaks)
    assert matrix.routes >= 15 and matrix.cells >= 15 * len(posing)
    # and nothing changed: one certificate, still valid, the project still approved
    city = bearer(mint(role="city_admin"))
    registry = world.apps["registry"]
    certs = await registry.get(
        "/v1/certificates", params={"project_id": filing.project_id}, headers=city
    )
    assert [(c["code"], c["status"]) for c in certs.json()["items"]] == [(filing.code, "valid")]
    project = await registry.get(f"/v1/projects/{filing.project_id}", headers=city)
    assert project.json()["status"] == "approved"


# --- a deactivated org, across services (issue 17, finding 4) ---------------------------------


async def test_a_deactivated_orgs_tokens_lose_every_service_through_the_org_events(
    world: World,
) -> None:
    """Review deactivates unit A1 and provider P (``PATCH /v1/orgs/{id}``); ``org.upserted``
    carries it to claims and the registry, and from then on their tokens read and write nothing
    anywhere: 403 ``org_inactive`` where they read persons with full ID numbers, claims,
    evidence, the compliance CSV, tasks, filings and certificates before; and the whole matrix
    finds no data for them."""
    filing = await _seed_registry(world)
    unit_project = await _file(world, "A1", "unit_admin")  # units file their own projects too
    mint, own, a1 = world.tokens.mint, world.parties["own"], world.orgs["A1"]
    unit = bearer(mint(role="unit_admin", org_id=a1))
    provider = bearer(mint(role="provider", org_id=filing.provider))
    reads: list[tuple[dict[str, str], str, str, dict[str, Any]]] = [
        (unit, "claims", f"/v1/persons/{own.person_id}", {}),
        (unit, "claims", f"/v1/claims/{own.claim_id}", {}),
        (unit, "claims", f"/v1/evidence/{own.evidence_id}/content", {}),
        (unit, "claims", "/v1/reports/compliance", {"year": YEAR, "org_id": a1, "format": "csv"}),
        (unit, "review", "/v1/review-tasks", {}),
        (unit, "review", f"/v1/review-tasks/{own.task_id}", {}),
        (unit, "registry", f"/v1/projects/{unit_project}", {}),
        (provider, "registry", f"/v1/projects/{filing.project_id}", {}),
        (provider, "registry", "/v1/certificates", {"project_id": filing.project_id}),
        (provider, "registry", f"/v1/certificates/{filing.code}/pdf", {}),
    ]
    for headers, service, path, params in reads:
        r = await world.apps[service].get(path, params=params, headers=headers)
        assert r.status_code == 200, (service, path, r.text)
    person = await world.apps["claims"].get(f"/v1/persons/{own.person_id}", headers=unit)
    assert person.json()["id_number"] == own.id_number

    city = bearer(mint(role="city_admin"))
    for org_id in (a1, filing.provider):
        r = await world.apps["review"].patch(
            f"/v1/orgs/{org_id}", json={"active": False}, headers=city
        )
        assert r.status_code == 200 and r.json()["active"] is False, r.text

    async def refused_everywhere() -> bool:  # the events reach claims and the registry
        for headers, service, path, params in reads:
            r = await world.apps[service].get(path, params=params, headers=headers)
            if r.status_code != 403:
                return False
        return True

    await until(refused_everywhere, timeout_s=20)
    for headers, service, path, params in reads:
        r = await world.apps[service].get(path, params=params, headers=headers)
        assert_problem(r, 403, "org_inactive")
        assert own.id_number not in r.text and own.name not in r.text
    writes = [
        (
            unit,
            "claims",
            "/v1/persons",
            {
                "id_number": id_number_of(903),
                "name": "新职工",
                "affiliation": {"kind": "unit", "org_id": a1},
            },
        ),
        (unit, "review", f"/v1/review-tasks/{own.task_id}/decision", {"decision": "approve"}),
        (unit, "registry", f"/v1/projects/{unit_project}/submit", None),
        (
            provider,
            "registry",
            f"/v1/projects/{filing.project_id}/completions",
            [{"id_number": id_number_of(904), "name": "李四", "hours": 16, "passed": True}],
        ),
    ]
    for headers, service, path, body in writes:
        r = await world.apps[service].post(path, json=body, headers=headers)
        assert_problem(r, 403, "org_inactive")

    deactivated = [
        Principal("unit A1 (deactivated)", "unit_admin", mint(role="unit_admin", org_id=a1), set()),
        Principal(
            "provider P (deactivated)",
            "provider",
            mint(role="provider", org_id=filing.provider),
            set(),
        ),
    ]
    matrix = await run_matrix(world, deactivated)
    assert not matrix.leaks, "\n".join(matrix.leaks)
    matrix = await run_registry_matrix(world, filing, deactivated)
    assert not matrix.leaks, "\n".join(matrix.leaks)
