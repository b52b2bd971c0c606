"""RFC 9457 problem details: one place that turns every error into ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.common.errors import DomainError
from libs.common.faults import is_transient

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://zz-ce.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` names the rule or the reason, stable for clients."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None


def _described(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# documented on every route: what a client must be ready for, all as problem documents
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("Malformed request (e.g. a bad cursor)"),
    401: _described("Missing, invalid or expired bearer token"),
    403: _described(
        "The caller's role may not do this, or (code org_inactive) the caller's organisation "
        "was deactivated and its tokens read and change nothing"
    ),
    404: _described("Not found, or outside the caller's scope (the two are not told apart)"),
    409: _described("Conflicts with the current state (duplicate, already decided, …)"),
    413: _described("The request body is larger than this endpoint accepts"),
    422: _described("A rule refuses the request, or the body does not match the schema"),
    429: _described("Too many requests: wait for Retry-After seconds"),
    503: _described(
        "A dependency (the database, the event broker, the province) is unreachable for a "
        "moment: nothing was changed, retry after Retry-After seconds"
    ),
}


def problem(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(
        exc.status, exc.code, exc.title, exc.detail, instance=request.url.path, **exc.extra
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem(
        422,
        "validation_error",
        "The request does not match the schema",
        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
        errors=errors,
        instance=request.url.path,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    return problem(exc.status_code, code, str(exc.detail), instance=request.url.path)


# what a client is told to wait when the database or broker is away for a moment
UNAVAILABLE_RETRY_AFTER_S = 2


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    if is_transient(exc):
        # the database or broker is restarting or unreachable: nothing was done, try again
        log.warning(
            "infrastructure unavailable: %s",
            type(exc).__name__,
            extra={"path": request.url.path},
        )
        response = problem(
            503,
            "service_unavailable",
            "Service temporarily unavailable",
            "the database or the event broker cannot be reached just now; nothing was changed, "
            "retry shortly",
            instance=request.url.path,
            retry_after_s=UNAVAILABLE_RETRY_AFTER_S,
        )
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
        return response
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem(500, "internal_error", "Internal server error", instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
