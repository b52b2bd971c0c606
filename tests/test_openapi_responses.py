"""The OpenAPI documents say what every response is: each 2xx JSON response of every route of
every service names a schema in ``components`` (the generated SDKs get types, not blobs).
Responses that are files (PDF, images, CSV, XLSX, Prometheus text) are exempt by content type.
Real responses are checked against these schemas by :class:`tests.support.OpenApiResponses`
in the services' API tests."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from tests.support import OpenApiResponses

SERVICES = ("claims", "review", "registry", "sync")


class Named(BaseModel):
    value: int


class Point(BaseModel):
    x: int
    y: int


def untyped_json_responses(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every route with a 2xx JSON response whose schema is not a named one."""
    components = document.get("components", {}).get("schemas", {})
    untyped: set[tuple[str, str]] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                for content_type, media in response.get("content", {}).items():
                    if not content_type.startswith("application/json"):
                        continue  # files and text are exempt
                    ref = media.get("schema", {}).get("$ref", "")
                    name = ref.removeprefix("#/components/schemas/")
                    if not ref.startswith("#/components/schemas/") or name not in components:
                        untyped.add((method.upper(), path))
    return untyped


def openapi_of(service: str) -> dict[str, Any]:
    app: FastAPI = importlib.import_module(f"services.{service}.main").create_app()
    return app.openapi()


@pytest.mark.parametrize("service", SERVICES)
def test_every_2xx_json_response_has_a_named_schema(service: str) -> None:
    document = openapi_of(service)
    untyped = untyped_json_responses(document)
    assert not untyped, f"{service}: responses without a named schema: {untyped}"
    assert len(document["paths"]) >= 4  # the operations routes at least: the walk saw routes


def test_file_responses_are_exempt_and_anonymous_json_is_caught() -> None:
    app = FastAPI()

    @app.get("/named")
    async def named() -> Named:
        return Named(value=1)

    @app.get("/anonymous")
    async def anonymous() -> dict[str, Any]:
        return {}

    @app.get("/text", response_class=PlainTextResponse)
    async def text() -> str:
        return "metrics"

    @app.get("/pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
    async def pdf() -> Response:
        return Response(b"%PDF-", media_type="application/pdf")

    document = app.openapi()
    assert set(document["paths"]) == {"/named", "/anonymous", "/text", "/pdf"}
    assert untyped_json_responses(document) == {("GET", "/anonymous")}


async def test_a_response_that_breaks_its_schema_is_caught() -> None:
    app = FastAPI()

    @app.get("/point", response_model=Point)
    async def point(broken: bool = False) -> JSONResponse:
        # returning a Response skips FastAPI's own validation: only the document check sees it
        return JSONResponse({"x": 1} if broken else {"x": 1, "y": 2})

    checker = OpenApiResponses(app.openapi())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", event_hooks={"response": [checker.hook]}
    ) as http:
        assert (await http.get("/point")).json() == {"x": 1, "y": 2}
        with pytest.raises(AssertionError, match="'y' is a required property"):
            await http.get("/point", params={"broken": "true"})
    assert checker.checked == 1
