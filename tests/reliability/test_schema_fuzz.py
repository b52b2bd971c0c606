"""Schemathesis over every service's own OpenAPI document, with a valid token of every role: each
operation gets requests generated from its schema (path ids now of a seeded object, now made up;
dates, numbers and strings at their edges), each sent by every caller to the four services
running in-process over a seeded world (the authorization matrix's org tree, persons, claims and
review tasks, plus an org of each type, an approved project with a certificate and an exam card).
No answer is a 5xx; every answer's status is one the operation documents, and its body matches
the documented schema. Generation is derandomized (the same cases every run) and bounded."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from libs.common.auth import load_or_create_dev_key
from services.sync.state import sync_of
from tests.reliability.harness import id_number_of, pdf_of
from tests.reliability.test_authorization_matrix import World, _seed, _start, bearer
from tests.support import until

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

YEAR = 2026
EXAMPLES_PER_OPERATION = 3
CHECKS = [status_code_conformance, response_schema_conformance]
# the process-wide routes say nothing of tokens and are not the fuzzer's business
SKIPPED = {"/metrics", "/healthz", "/readyz"}


@dataclass
class Caller:
    label: str
    token: str


async def _extend(world: World) -> tuple[dict[str, str], list[Caller]]:
    """An org of each type the matrix lacks, an approved project with a certificate, an exam
    card: the ids the generated requests are pointed at, and a caller of every role."""
    http = world.apps
    tokens = world.tokens
    city = bearer(tokens.mint(role="city_admin"))
    orgs = dict(world.orgs)
    for key, kind, parent in [
        ("D", "department", None),
        ("D1", "unit", "D"),
        ("G", "agency", "A"),
        ("P", "provider", None),
        ("X", "exam_center", None),
    ]:
        body: dict[str, Any] = {"code": f"fuzz-{key}", "name": f"机构{key}", "type": kind}
        if parent:
            body["parent_id"] = orgs[parent]
        r = await http["review"].post("/v1/orgs", json=body, headers=city)
        assert r.status_code == 201, r.text
        orgs[key] = r.json()["id"]
    provider = bearer(tokens.mint(role="provider", org_id=orgs["P"]))
    project = {
        "year": YEAR,
        "applicant_org_id": orgs["P"],
        "address": "枣庄市薛城区复元三路1号",
        "name": "数字化管理师（初级）培训班",
        "person_in_charge": "王主任",
        "contact_name": "李老师",
        "contact_phone": "0632-3786666",
        "advanced_seminar": False,
        "plan": "第一天：概论\n第二天：实务与考核",
        "target_trainees": "全市专业技术人员",
        "planned_participants": 120,
        "start_date": "2026-11-02",
        "end_date": "2026-11-03",
        "days": 2,
        "planned_hours": 16,
        "venue": "枣庄学院",
        "form": "offline",
    }

    async def filed() -> str | None:  # the provider org reaches registry as an event
        r = await http["registry"].post("/v1/projects", json=project, headers=provider)
        return r.json()["id"] if r.status_code == 201 else None

    project_id = await until(filed, timeout_s=20)
    r = await http["registry"].post(f"/v1/projects/{project_id}/submit", headers=provider)
    assert r.status_code == 200, r.text
    r = await http["registry"].post(
        f"/v1/projects/{project_id}/decision",
        json={"decision": "approve", "opinion": "同意"},
        headers=city,
    )
    assert r.status_code == 200, r.text
    own, sibling = world.parties["own"], world.parties["sibling"]
    r = await http["registry"].post(
        f"/v1/projects/{project_id}/completions",
        json=[{"id_number": own.id_number, "name": own.name, "hours": 16, "passed": True}],
        headers=provider,
    )
    assert r.status_code == 200, r.text
    certificates = await http["registry"].get(
        "/v1/certificates", params={"project_id": project_id}, headers=city
    )
    code = certificates.json()["items"][0]["code"]
    exam = bearer(tokens.mint(role="exam_center", org_id=orgs["X"]))
    r = await http["registry"].post(
        "/v1/exam-cards",
        json={"id_number": id_number_of(4), "name": "丁考务", "year": YEAR, "hours": 6},
        headers=exam,
    )
    assert r.status_code == 201, r.text
    ids = {
        "person_id": own.person_id,
        "claim_id": own.claim_id,
        "evidence_id": own.evidence_id,
        "task_id": own.task_id,
        "org_id": orgs["A1"],
        "year": str(YEAR),
        "project_id": project_id,
        "code": code,
        "card_no": r.json()["card_no"],
        "letter_id": "none",
    }
    mint = tokens.mint
    callers = [
        Caller("city_admin", mint(role="city_admin")),
        Caller("district A", mint(role="district_admin", org_id=orgs["A"])),
        Caller("department D", mint(role="department_admin", org_id=orgs["D"])),
        Caller("unit A1", mint(role="unit_admin", org_id=orgs["A1"])),
        Caller("agency G", mint(role="agency_admin", org_id=orgs["G"])),
        Caller("provider P", mint(role="provider", org_id=orgs["P"])),
        Caller("exam centre X", mint(role="exam_center", org_id=orgs["X"])),
        Caller("personnel (own)", mint(role="personnel", person_id=own.person_id)),
        Caller("personnel (sibling)", mint(role="personnel", person_id=sibling.person_id)),
        Caller("system", mint(role="system")),
        Caller("ops", mint(role="ops")),
    ]
    return ids, callers


def _cases(
    schema: Any,
    ids: dict[str, str],
    mode: GenerationMode = GenerationMode.POSITIVE,
    examples: int = EXAMPLES_PER_OPERATION,
) -> list[Any]:
    """Every operation's cases, the same every run: half aimed at the seeded objects. In the
    negative ``mode`` the requests break the schema (wrong types, missing fields, values out of
    range)."""
    cases: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED:
            continue
        names = [p.name for p in operation.path_parameters]
        strategies = [operation.as_strategy(mode)]
        if names:
            pinned = {n: ids[n] for n in names if n in ids}
            strategies.append(operation.as_strategy(mode, path_parameters=pinned))

        @given(case=st.one_of(*strategies))
        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def collect(case: Any) -> None:
            cases.append(case)

        try:
            collect()
        except Unsatisfiable:  # negative: an operation with nothing in it to break
            continue
    return cases


async def _send(client: httpx.AsyncClient, case: Any, token: str) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    headers = {**(kwargs.get("headers") or {}), **bearer(token)}
    data = kwargs.get("data")
    response = await client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=headers,
        json=kwargs.get("json"),
        content=data if isinstance(data, (bytes, str)) else None,
        data=data if isinstance(data, dict) else None,
        files=_files(kwargs.get("files")),
    )
    await response.request.aread()  # a multipart body streams: the checks read it again
    return response


def _files(files: list[tuple[str, Any]] | None) -> list[tuple[str, Any]] | None:
    """requests' multipart fields for httpx, whose fields are text or bytes (a generated field
    of another type goes as its text, as a browser would send it)."""
    if not files:
        return None
    return [
        (name, (part[0], _text(part[1]), *part[2:]) if isinstance(part, tuple) else _text(part))
        for name, part in files
    ]


def _text(value: Any) -> str | bytes:
    return value if isinstance(value, (str, bytes)) else json.dumps(value)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    load_or_create_dev_key(tmp_path)
    async with AsyncExitStack() as stack:
        apps, _ = await _start(stack, tmp_path, rate_limit_write_per_s=0)
        # no province runs here: reconciliations answer 503 at once rather than after retries
        sync_of(apps["sync"].state.service).province_client.max_attempts = 1
        clients = {  # an unhandled error is the 500 a client would get, not an exception here
            name: await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                    base_url=f"http://{name}",
                )
            )
            for name, app in apps.items()
        }
        world = await _seed(apps, clients)
        for app in apps.values():  # seeded: a commit still wakes the relay, idle polls can wait
            app.state.service.relay.poll_s = 2.0
        yield world


async def _send_all(
    world: World,
    documents: dict[str, Any],
    cases: dict[str, list[Any]],
    callers: list[Caller],
    checks: list[Any],
) -> tuple[dict[str, list[str]], Counter[int]]:
    """Every case of every service sent by every caller and checked: no 5xx (a documented 503
    aside: the province is not running here) and ``checks``; the failures by kind, the
    statuses seen."""
    failures: dict[str, list[str]] = {}
    statuses: Counter[int] = Counter()
    for name, client in world.apps.items():
        for caller in callers:
            for case in cases[name]:
                response = await _send(client, case, caller.token)
                statuses[response.status_code] += 1
                documented = documents[name]["paths"][case.path][case.method.lower()]["responses"]
                documented_503 = response.status_code == 503 and "503" in documented
                applied = checks if documented_503 else [not_a_server_error, *checks]
                if not applied:  # schemathesis would run its default checks for an empty list
                    continue
                try:
                    case.validate_response(response, checks=applied)
                except FailureGroup as exc:  # the checks that failed
                    what = (
                        f"{case.method} {name}{case.path} {response.status_code}: {_reasons(exc)}"
                    )
                    failures.setdefault(what, []).append(
                        f"{caller.label} {case.formatted_path} query={case.query} "
                        f"body={str(case.body)[:200]} -> {response.text[:300]}"
                    )
    return failures, statuses


def _assert_none(failures: dict[str, list[str]]) -> None:
    assert not failures, f"{len(failures)} kinds of failure:\n" + "\n".join(
        f"{what} ({len(seen)}x), e.g. {seen[0]}" for what, seen in failures.items()
    )


async def test_every_operation_every_role_no_5xx_and_every_answer_as_documented(
    world: World,
) -> None:
    ids, callers = await _extend(world)
    started = time.monotonic()
    documents = {name: (await c.get("/openapi.json")).json() for name, c in world.apps.items()}
    cases = {
        name: _cases(schemathesis.openapi.from_dict(document), ids)
        for name, document in documents.items()
    }
    generated = time.monotonic()
    failures, statuses = await _send_all(world, documents, cases, callers, CHECKS)
    total = sum(len(c) for c in cases.values())
    print(
        f"\nRELIABILITY schema fuzz: {total} cases x {len(callers)} callers -> "
        f"{sum(statuses.values())} requests; generated in {generated - started:.1f}s, sent and "
        f"checked in {time.monotonic() - generated:.1f}s; statuses {dict(sorted(statuses.items()))}"
    )
    _assert_none(failures)


NEGATIVE_EXAMPLES_PER_OPERATION = 3
NEGATIVE_CALLERS = ("city_admin", "provider P", "personnel (own)")


async def test_requests_that_break_the_schema_get_a_4xx_never_a_5xx(world: World) -> None:
    """Schemathesis in negative mode: each operation gets requests that do not fit its schema
    (wrong types, missing or extra fields, values out of range), sent by a reviewer, a provider
    and a person. None is answered with a 5xx. Bounded: a few cases an operation, three
    callers."""
    ids, callers = await _extend(world)
    chosen = [c for c in callers if c.label in NEGATIVE_CALLERS]
    documents = {name: (await c.get("/openapi.json")).json() for name, c in world.apps.items()}
    started = time.monotonic()
    cases = {
        name: _cases(
            schemathesis.openapi.from_dict(document),
            ids,
            GenerationMode.NEGATIVE,
            NEGATIVE_EXAMPLES_PER_OPERATION,
        )
        for name, document in documents.items()
    }
    generated = time.monotonic()
    failures, statuses = await _send_all(world, documents, cases, chosen, [])
    print(
        f"\nRELIABILITY negative schema fuzz: {sum(statuses.values())} requests; generated in "
        f"{generated - started:.1f}s, sent and checked in {time.monotonic() - generated:.1f}s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    _assert_none(failures)


def _reasons(exc: FailureGroup) -> str:
    nested = exc.exceptions
    return "; ".join(str(e).split("\n")[0] for e in nested)


HUGE = 2**63  # one past the largest int64: no database column holds it


@dataclass(frozen=True)
class Edge:
    """One request at an edge and the problem it must get: ``body`` is JSON (or raw bytes sent
    as JSON, for what ``json.dumps`` will not write); ``caller`` a key of the test's tokens."""

    service: str
    method: str
    path: str
    query: dict[str, Any] | None = None
    body: dict[str, Any] | bytes | None = None
    code: str = ""
    caller: str = "city"
    status: int = 422


def _claim(**fields: Any) -> dict[str, Any]:
    return {
        "person_id": "{person_id}",
        "year": YEAR,
        "category": "study",
        "title": "自学",
        "evidence_ids": ["{evidence_id}"],
        **fields,
    }


def _raw_claim(hours: str) -> bytes:
    return (
        '{"person_id": "{person_id}", "year": 2026, "category": "study", "title": "t", '
        f'"hours": {hours}}}'
    ).encode()


EDGES: list[Edge] = [
    Edge("claims", "GET", "/v1/claims", {"person_id": "{person_id}", "year": HUGE}),
    Edge("claims", "GET", f"/v1/persons/{{person_id}}/transcripts/{HUGE}"),
    Edge(
        "claims",
        "GET",
        "/v1/persons/{person_id}/title-readiness",
        {"application_date": "2026-10-09", "year": HUGE},
    ),
    Edge(
        "claims",
        "GET",
        "/v1/persons/{person_id}/title-readiness",
        {"application_date": "0001-01-01", "year": YEAR},
        code="invalid_date",
    ),
    Edge(
        "claims",
        "GET",
        "/v1/persons/{person_id}/title-readiness",
        {"application_date": "9999-12-31", "year": YEAR},
        code="invalid_date",
    ),
    Edge(
        "claims",
        "GET",
        "/v1/persons/{person_id}/plan",
        {"application_date": "0001-01-01"},
        code="invalid_date",
    ),
    Edge(
        "review",
        "GET",
        "/v1/review-decisions",
        {"org_id": "{org_id}", "from": "9999-12-31", "to": "9999-12-31"},
        code="invalid_period",
    ),
    Edge(
        "review",
        "GET",
        "/v1/review-decisions",
        {"org_id": "{org_id}", "from": "0001-01-01", "to": "0001-01-02"},
        code="invalid_period",
    ),
    Edge("registry", "GET", "/v1/projects", {"year": HUGE}),
    Edge(
        "registry",
        "POST",
        "/v1/exam-cards",
        body={"id_number": "{id_number}", "name": "丁", "year": HUGE, "hours": 6},
        caller="exam",
    ),
    # huge and non-finite numbers (issue 17): Decimal could not round 1e27 to one place
    Edge(
        "claims", "POST", "/v1/claims", body=_claim(hours=1e27), code="invalid_hours", caller="own"
    ),
    Edge(
        "claims", "POST", "/v1/claims", body=_claim(hours=1e308), code="invalid_hours", caller="own"
    ),
    *(  # the same as text, which a float field would read as a float
        Edge(
            "claims", "POST", "/v1/claims", body=_claim(hours=v), code="invalid_hours", caller="own"
        )
        for v in ("NaN", "Infinity", "1e400")
    ),
    Edge(
        "registry",
        "POST",
        "/v1/exam-cards",
        body={"id_number": "{id_number}", "name": "丁", "year": YEAR, "hours": "Infinity"},
        code="validation_error",
        caller="exam",
    ),
    *(
        Edge(
            "claims",
            "POST",
            "/v1/claims",
            body=_raw_claim(v),
            code="non_finite_number",
            caller="own",
        )
        for v in ("NaN", "Infinity", "-Infinity", "1e999")
    ),
    Edge(
        "claims",
        "POST",
        "/v1/persons/batch",
        body=b'{"persons": [{"id_number": NaN, "name": "n", "affiliation": {"kind": "unit"}}]}',
        code="non_finite_number",
    ),
    Edge(
        "registry",
        "POST",
        "/v1/exam-cards",
        body={"id_number": "{id_number}", "name": "丁", "year": YEAR, "hours": 1e27},
        code="validation_error",  # a Decimal field: its schema says at most one decimal place
        caller="exam",
    ),
    Edge(
        "registry",
        "POST",
        "/v1/exam-cards",
        body=b'{"id_number": "x", "name": "n", "year": 2026, "hours": Infinity}',
        code="non_finite_number",
        caller="exam",
    ),
    Edge(
        "sync",
        "POST",
        "/v1/learning-records",
        body=b'{"records": [{"record_id": "r", "id_number": "x", "year": 2026, '
        b'"subject": "public", "hours": NaN, "course": "c", "completed_at": "2026-01-01"}]}',
        code="non_finite_number",
        caller="system",
    ),
    Edge(
        "review",
        "POST",
        "/v1/review-tasks/decisions",
        body=b'{"task_ids": ["t"], "decision": "approve", "reason": -Infinity}',
        code="non_finite_number",
    ),
]

# validly signed tokens whose claims have the wrong type (issue 17): a 401, never SQL's 500
WRONG_CLAIMS: dict[str, dict[str, Any]] = {
    "org_id list": {"role": "unit_admin", "org_id": ["{org_id}", "x"]},
    "org_id object": {"role": "district_admin", "org_id": {"id": "{org_id}"}},
    "org_id number": {"role": "provider", "org_id": 1},
    "person_id list": {"role": "personnel", "person_id": ["{person_id}"]},
    "role list": {"role": ["city_admin"]},
    "sub object": {"role": "city_admin", "sub": {"a": 1}},
}
TOKEN_PROBES = [
    ("claims", "/v1/reports/compliance?year=2026&org_id={org_id}"),
    ("claims", "/v1/persons/{person_id}"),
    ("claims", "/v1/me"),
    ("review", "/v1/review-tasks?status=open"),
    ("review", "/v1/review-queues?org_id={org_id}"),
    ("registry", "/v1/projects"),
    ("registry", "/v1/certificates?mine=true"),
    ("sync", "/v1/sync/summary"),
]
EDGES += [
    Edge(service, "GET", path, code="invalid_token", caller=f"wrong: {label}", status=401)
    for label in WRONG_CLAIMS
    for service, path in TOKEN_PROBES
]


async def test_edge_values_in_queries_and_bodies_are_a_422_problem_never_a_500(
    world: World, tmp_path: Path
) -> None:
    """What the fuzzer found: years past int64, dates at the ends of the calendar, hours past
    Decimal's precision, NaN and Infinity, token claims of the wrong type."""
    own = world.parties["own"]
    mint = world.tokens.mint
    fresh = await world.apps["claims"].post(  # evidence no claim uses yet
        "/v1/evidence",
        headers=bearer(mint(role="personnel", person_id=own.person_id)),
        files={"file": ("e.pdf", pdf_of(997), "application/pdf")},
    )
    assert fresh.status_code == 201, fresh.text
    values = {
        "person_id": own.person_id,
        "org_id": world.orgs["A"],
        "id_number": own.id_number,
        "evidence_id": fresh.json()["id"],
    }

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**values)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    tokens = {
        "city": mint(role="city_admin"),  # reads everything
        "exam": mint(role="exam_center", org_id=world.orgs["A1"]),  # issues cards
        "own": mint(role="personnel", person_id=own.person_id),
        "system": mint(role="system"),
    }
    key = load_or_create_dev_key(tmp_path)  # the world's signing key: tokens made by hand
    now = int(time.time())
    for label, claims in WRONG_CLAIMS.items():
        signed = {"sub": "fuzz", "iss": "zz-ce", "iat": now, "exp": now + 600, **fill(claims)}
        tokens[f"wrong: {label}"] = jwt.encode(signed, key, algorithm="HS256")
    wrong = []
    for edge in EDGES:
        headers = bearer(tokens[edge.caller])
        raw = edge.body if isinstance(edge.body, bytes) else None
        if raw is not None:
            raw = raw.replace(b"{person_id}", values["person_id"].encode())
            headers["Content-Type"] = "application/json"
        r = await world.apps[edge.service].request(
            edge.method,
            fill(edge.path),
            params={k: fill(v) for k, v in (edge.query or {}).items()},
            json=fill(edge.body) if isinstance(edge.body, dict) else None,
            content=raw,
            headers=headers,
        )
        if r.status_code != edge.status or (edge.code and r.json().get("code") != edge.code):
            wrong.append(
                f"{edge.caller}: {edge.method} {edge.service}{edge.path} "
                f"{edge.query or edge.body!r}: {r.status_code} {r.text[:200]}"
            )
    assert not wrong, "\n".join(wrong)
