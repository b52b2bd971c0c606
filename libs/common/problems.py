"""RFC 9457 problem details: one place that turns every error into ``application/problem+json``."""

from __future__ import annotations

import html
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from libs.common import messages
from libs.common.errors import DomainError
from libs.common.faults import is_transient

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemContext:
    """What the problems of the current request are written for: the catalogue language and
    where ``type`` URLs start (the service's own ``/problems/``, from its configured address)."""

    language: str = messages.DEFAULT_LANGUAGE
    type_base: str = "/problems/"


_context: ContextVar[ProblemContext | None] = ContextVar("problem_context", default=None)


class ProblemContextMiddleware:
    """Sets, for each request, the language its problems are written in (``Accept-Language``,
    zh-CN by default) and the base of their ``type`` URLs. Plain ASGI and outside every other
    middleware, so the problems of rate and body limits are localized too."""

    def __init__(self, app: ASGIApp, type_base: str) -> None:
        self.app = app
        self.type_base = type_base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            language = messages.negotiate(Headers(scope=scope).get("accept-language"))
            # set, not reset: the server-error handler runs after this middleware returns
            _context.set(ProblemContext(language, self.type_base))
        await self.app(scope, receive, send)


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
    401: {
        **_described("Missing, invalid or expired bearer token"),
        "headers": {
            "WWW-Authenticate": {
                "description": 'The challenge: `Bearer realm="ce"`, with `error="invalid_token"` '
                "for a bad or expired token",
                "schema": {"type": "string"},
            }
        },
    },
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
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The problem document of ``code``: its ``title`` from the catalogue of the request's
    language (``title`` as given is the English fallback), ``type`` its documentation page
    (``GET /problems/{code}``). A 401 challenges with ``WWW-Authenticate: Bearer``."""
    context = _context.get() or ProblemContext()
    body: dict[str, Any] = {
        "type": context.type_base + code,
        "title": messages.title_of(code, status, context.language, title),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = JSONResponse(
        body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )
    response.headers["Content-Language"] = context.language
    if status == 401 and "www-authenticate" not in response.headers:
        error = ' error="invalid_token"' if code == "invalid_token" else ""
        response.headers["WWW-Authenticate"] = f'Bearer realm="ce"{error}'
    return response


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
    # the exception's headers (a 405's Allow) go with the problem
    return problem(
        exc.status_code,
        code,
        str(exc.detail),
        headers=dict(exc.headers or {}),
        instance=request.url.path,
    )


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


def problems_router() -> APIRouter:
    """``GET /problems`` and ``GET /problems/{code}``: the pages a problem's ``type`` points at,
    naming each code in every catalogue language (HTML to a browser, JSON otherwise)."""
    router = APIRouter(tags=["operations"])

    @router.get("/problems", operation_id="listProblemTypes")
    async def problem_types() -> ProblemTypes:
        """Every problem code the catalogues name, with its titles."""
        return ProblemTypes(items=[_problem_type(code) for code in messages.known_codes()])

    @router.get(
        "/problems/{code}",
        operation_id="getProblemType",
        response_model=ProblemType,
        responses={
            200: {"content": {"text/html": {}}},
            404: _described("No catalogue names this code"),
        },
    )
    async def problem_type(code: str, request: Request) -> Response:
        """What a problem ``code`` means: its titles in each language; HTML to ``Accept:
        text/html``."""
        if code not in messages.known_codes():
            raise DomainError(f"no problem has code {code!r}", code="not_found", status=404)
        described = _problem_type(code)
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(_problem_page(described))
        return JSONResponse(described.model_dump())

    return router


class ProblemType(BaseModel):
    code: str
    titles: dict[str, str]  # language → title


class ProblemTypes(BaseModel):
    items: list[ProblemType]


def _problem_type(code: str) -> ProblemType:
    return ProblemType(
        code=code,
        titles={
            lang: messages.CATALOGUES[lang].get(code) or code.replace("_", " ").capitalize()
            for lang in messages.LANGUAGES
        },
    )


def _problem_page(described: ProblemType) -> str:
    code = html.escape(described.code)
    rows = "".join(
        f"<tr><th>{html.escape(lang)}</th><td>{html.escape(title)}</td></tr>"
        for lang, title in described.titles.items()
    )
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{code}</title></head><body><h1>错误代码 <code>{code}</code></h1>"
        f"<table>{rows}</table><p>问题详情遵循 RFC 9457；<code>code</code> 字段保持不变，"
        "<code>title</code> 随 Accept-Language（默认 zh-CN，可选 en）变化。</p></body></html>"
    )
