"""What every service offers an integrator, through its HTTP API (API.md "every service"): the
bearer scheme in OpenAPI on every protected operation, readable unique operation ids, enums and
``date-time`` timestamps; ``/docs`` and ``/redoc`` with their assets served by the service (no
CDN), through the gateway's prefix too; CORS for the allowed origins only; problems in Chinese
by default and in English on request, each ``type`` a page of its code, a 401 that challenges
with ``WWW-Authenticate: Bearer``, a 405 with ``Allow``; ``/healthz`` naming the replica."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ce.topology import app_module
from libs.common.settings import Settings
from tests.support import assert_problem

SERVICES = ["claims", "review", "registry", "sync"]
# operations anyone may call: operations, problem pages, a certificate's public check
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/problems"),
    ("get", "/problems/{code}"),
    ("get", "/v1/certificates/{code}"),
    ("get", "/v1/proofs/{code}"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/v1/status-lists/{list_id}"),
}


@asynccontextmanager
async def running(
    service: str, data_dir: Path, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The service's real app (its lifespan: migrations, bus, workers) on SQLite, over HTTP."""
    config = Settings(
        service=service,
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / (service + '.db')}",
        **settings,
    )
    app = app_module(service).create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as http:
            yield http


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation
    ]


@pytest.mark.parametrize("service", SERVICES)
async def test_openapi_is_made_for_a_generated_client(service: str, tmp_path: Path) -> None:
    async with running(service, tmp_path) as http:
        document = (await http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    ids = []
    for method, path, operation in operations(document):
        ids.append(operation["operationId"])
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", operation["operationId"]), operation
        if (method, path) in PUBLIC:
            continue
        # Swagger's Authorize sends the token on every operation that needs one
        assert operation.get("security") == [{"bearer": []}], (method, path)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    timestamps = 0
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            strings = [p for p in [prop, *prop.get("anyOf", ())] if p.get("type") == "string"]
            if field.endswith("_at") or field == "at":
                timestamps += 1
                assert strings and all(p.get("format") == "date-time" for p in strings), (
                    name,
                    field,
                )
            if field == "subject" and strings:
                assert all(p.get("enum") == ["public", "professional"] for p in strings), name
            if field == "category" and strings and service == "claims":
                assert all("training" in p.get("enum", ()) for p in strings), name
    assert timestamps > 0


async def test_claims_timestamps_are_one_rfc3339_form_and_category_an_enum(
    tmp_path: Path,
) -> None:
    from services.claims.tests.harness import claims_stack, one_day_training

    async with claims_stack(tmp_path) as stack:
        unit = await stack.add_org("unit")
        person = await stack.register(unit)
        evidence = await stack.upload(person)
        claim = await stack.submit(person, one_day_training([evidence]))
        document = (await stack.http.get("/openapi.json")).json()
    view = document["components"]["schemas"]["ClaimView"]["properties"]
    assert claim["category"] in view["category"]["enum"]
    for field in ("created_at", "updated_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", claim[field]), claim


@pytest.mark.parametrize("service", ["claims", "registry"])
async def test_docs_are_served_by_the_service_itself(service: str, tmp_path: Path) -> None:
    async with running(service, tmp_path) as http:
        for page in ("/docs", "/redoc"):
            html = (await http.get(page)).text
            sources = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert sources, html
            # no CDN: every asset is the service's own, and it answers
            for source in sources:
                assert not urlsplit(source).netloc, (page, source)
                asset = await http.get(source)
                assert asset.status_code == 200 and len(asset.content) > 100, source
            assert "/openapi.json" in html


async def test_behind_the_gateway_the_docs_point_through_its_prefix(tmp_path: Path) -> None:
    async with running("claims", tmp_path / "a", root_path="/claims/") as http:
        # the gateway strips the prefix (deploy/nginx: proxy_pass http://claims/)
        html = (await http.get("/docs")).text
        document = (await http.get("/openapi.json")).json()
        asset = await http.get("/docs-assets/swagger-ui-bundle.js")
        # a proxy that keeps it reaches the same routes
        kept = await http.get("/claims/healthz")
    assert kept.status_code == 200 and kept.json()["service"] == "claims"
    assert "'/claims/openapi.json'" in html or '"/claims/openapi.json"' in html, html
    assert "/claims/docs-assets/swagger-ui-bundle.js" in html
    assert asset.status_code == 200
    assert document["servers"] == [{"url": "/claims"}]


async def test_a_forwarded_prefix_counts_only_behind_a_configured_proxy(tmp_path: Path) -> None:
    prefix = {"X-Forwarded-Prefix": "/claims"}
    async with running("claims", tmp_path / "direct") as http:
        html = (await http.get("/docs", headers=prefix)).text
    assert "/claims/" not in html  # anyone may send the header: it is ignored
    async with running("claims", tmp_path / "proxied", forwarded_allow_ips="127.0.0.1") as http:
        html = (await http.get("/docs", headers=prefix)).text
        evil = (await http.get("/docs", headers={"X-Forwarded-Prefix": '/x"><script>'})).text
        health = await http.get("/healthz", headers=prefix)
    assert "/claims/docs-assets/swagger-ui.css" in html
    assert "<script>" not in evil.split("</head>")[0] and "/x" not in evil
    assert health.status_code == 200


async def test_cors_answers_a_preflight_for_allowed_origins_only(tmp_path: Path) -> None:
    app_origin = "https://app.example.test"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    async with running("claims", tmp_path / "closed") as http:
        closed = await http.options("/v1/claims", headers={"Origin": app_origin, **preflight})
        plain = await http.get("/healthz", headers={"Origin": app_origin})
    assert "access-control-allow-origin" not in closed.headers
    assert "access-control-allow-origin" not in plain.headers
    async with running("claims", tmp_path / "open", cors_origins=app_origin + "/") as http:
        allowed = await http.options("/v1/claims", headers={"Origin": app_origin, **preflight})
        other = await http.options(
            "/v1/claims", headers={"Origin": "https://evil.example.test", **preflight}
        )
        simple = await http.get("/v1/claims", headers={"Origin": app_origin})
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == app_origin
    assert "POST" in allowed.headers["access-control-allow-methods"]
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {
        h.strip() for h in allowed_headers.split(",")
    }
    assert "access-control-allow-origin" not in other.headers
    # an actual cross-origin call (here refused: no token) carries the header too
    assert simple.status_code == 401
    assert simple.headers["access-control-allow-origin"] == app_origin


@pytest.mark.parametrize("service", SERVICES)
async def test_problems_speak_chinese_by_default_and_english_on_request(
    service: str, tmp_path: Path
) -> None:
    path = {
        "claims": "/v1/claims",
        "review": "/v1/review-tasks",
        "registry": "/v1/projects",
        "sync": "/v1/sync/records",
    }[service]
    async with running(service, tmp_path) as http:
        chinese = await http.get(path)
        english = await http.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})
        preferred = await http.get(path, headers={"Accept-Language": "en;q=0.5, zh-CN"})
        bad = await http.get(path, headers={"Authorization": "Bearer not-a-token"})
        page = await http.get(urlsplit(chinese.json()["type"]).path)
        html = await http.get(
            urlsplit(chinese.json()["type"]).path, headers={"Accept": "text/html"}
        )
        unknown = await http.get("/problems/no_such_code")
    zh = assert_problem(chinese, 401, "missing_token")
    en = assert_problem(english, 401, "missing_token")
    assert zh["title"] == "缺少访问令牌" and chinese.headers["content-language"] == "zh-CN"
    assert en["title"] == "Authentication required" and english.headers["content-language"] == "en"
    assert preferred.json()["title"] == "缺少访问令牌"
    for refused in (chinese, english):
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert_problem(bad, 401, "invalid_token")
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    # the type is a page of the service documenting its code
    assert page.status_code == 200
    assert page.json() == {
        "code": "missing_token",
        "titles": {"zh-CN": "缺少访问令牌", "en": "Authentication required"},
    }
    assert "missing_token" in html.text and "缺少访问令牌" in html.text
    assert_problem(unknown, 404, "not_found")


async def test_a_validation_problem_keeps_its_code_in_either_language(tmp_path: Path) -> None:
    from services.claims.tests.harness import claims_stack

    async with claims_stack(tmp_path) as stack:
        headers = stack.city
        zh = await stack.http.post("/v1/persons", json={"name": 1}, headers=headers)
        en = await stack.http.post(
            "/v1/persons", json={"name": 1}, headers={**headers, "Accept-Language": "en"}
        )
    assert assert_problem(zh, 422, "validation_error")["title"] == "请求内容不符合接口定义"
    assert (
        assert_problem(en, 422, "validation_error")["title"]
        == "The request does not match the schema"
    )
    assert zh.json()["errors"] == en.json()["errors"]


async def test_a_wrong_method_is_405_with_allow(tmp_path: Path) -> None:
    async with running("review", tmp_path) as http:
        refused = await http.delete("/healthz")
    assert refused.status_code == 405
    assert refused.json()["code"] == "method_not_allowed"
    assert refused.json()["title"] == "不支持该请求方法"
    assert refused.headers["allow"] == "GET"


@pytest.mark.parametrize("service", SERVICES)
async def test_healthz_names_the_service_and_the_replica(service: str, tmp_path: Path) -> None:
    async with running(service, tmp_path) as http:
        health = (await http.get("/healthz")).json()
    assert health["status"] == "ok" and health["service"] == service
    assert re.fullmatch(r".+:\d+", health["instance"]), health


def test_every_code_the_services_raise_has_a_chinese_title() -> None:
    """The zh-CN catalogue names every literal problem code in the code (a new code without a
    title would reach a Chinese user under its HTTP status's generic title)."""
    from libs.common.messages import zh_CN

    root = Path(__file__).resolve().parent.parent
    literal = re.compile(r'\bcode(?:=| = )"([a-z0-9_]+)"')
    raised = {
        code
        for folder in ("libs", "services")
        for source in (root / folder).rglob("*.py")
        if "tests" not in source.parts
        for code in literal.findall(source.read_text(encoding="utf-8"))
    }
    raised |= {f"{subject}_subject_unverified" for subject in ("public", "professional")}
    assert raised and not raised - set(zh_CN.TITLES), sorted(raised - set(zh_CN.TITLES))
