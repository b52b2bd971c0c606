"""The simulator's errors, rendered as RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.contracts.province import Problem

PROBLEM_BASE = "https://province.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProvinceProblem(Exception):
    """An error the simulator answers with, rendered as problem details."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}


def _problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status}
    body["code"] = code
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProvinceProblem)
    return _problem(exc.status, exc.code, exc.title, exc.detail, exc.headers)


async def on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return _problem(422, "validation_error", "The request does not match the contract", detail,
                    errors=jsonable_encoder(errors))  # fmt: skip


async def on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _problem(exc.status_code, f"http_{exc.status_code}", str(exc.detail))


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "The request does not match the contract."},
    429: {"model": Problem, "description": "Over the rate limit; retry after `Retry-After` s."},
    503: {"model": Problem, "description": "Temporarily unavailable; retry with backoff."},
}
