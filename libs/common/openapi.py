"""The OpenAPI document every service serves, made for generated clients: readable operation ids
(``submitClaim``), the bearer scheme (declared by :data:`libs.common.auth.BEARER_SCHEME` on every
operation that takes a principal), ``format: date-time`` on every timestamp and enums for the
string fields whose values are a closed set (``subject``, ``category``, …)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

# the closed sets every service shares; a service adds its own through ``ServiceSpec``
SHARED_ENUMS: Mapping[str, Sequence[str]] = {"subject": ("public", "professional")}

_TIMESTAMP = re.compile(r"(^|_)(at|timestamp)$")
_DATE = re.compile(r"(^|_)date$")


def operation_id(route: APIRoute) -> str:
    """The operation id of a route: its function's name in lower camel case
    (``submit_claim`` → ``submitClaim``), unless the route declares one."""
    head, *rest = route.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def install_openapi(app: FastAPI, enums: Mapping[str, Sequence[str]]) -> None:
    """Serve ``app``'s OpenAPI document with timestamps and closed sets declared (see the module
    docstring); built once, on the first request for it."""
    closed = {**SHARED_ENUMS, **enums}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                servers=app.servers,
            )
            refine(schema, closed)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def refine(schema: dict[str, Any], enums: Mapping[str, Sequence[str]]) -> None:
    """Declare, in place, ``format: date-time`` on every string property or parameter named as a
    timestamp (``created_at``, ``decided_at``, …), ``format: date`` on those named as a day
    (``start_date``) and the ``enums`` of the string properties and
    parameters they name, where the document left them open."""
    for name, node in _named_schemas(schema):
        for leaf in _string_leaves(node):
            if _TIMESTAMP.search(name) and "format" not in leaf:
                leaf["format"] = "date-time"
            elif _DATE.search(name) and "format" not in leaf:
                leaf["format"] = "date"
            elif name in enums and "enum" not in leaf and "format" not in leaf:
                leaf["enum"] = list(enums[name])


def _named_schemas(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, schema) of every component property and every operation parameter."""
    for component in schema.get("components", {}).get("schemas", {}).values():
        yield from _properties(component)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", ()):
                if "schema" in parameter:
                    yield parameter["name"], parameter["schema"]


def _properties(component: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from component.get("properties", {}).items()
    for key in ("allOf", "anyOf", "oneOf"):
        for part in component.get(key, ()):
            yield from _properties(part)


def _string_leaves(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The string schemas of ``node``: itself, or the string members of its ``anyOf`` (an
    optional field) or of its array ``items``."""
    if node.get("type") == "string":
        yield node
    for member in node.get("anyOf", ()):
        yield from _string_leaves(member)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        yield from _string_leaves(node["items"])
