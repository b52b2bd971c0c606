"""Limits enforced in the ASGI layer, before a route parses anything or checks a token.

* :class:`BodyLimitMiddleware`: a request body larger than its route's limit is refused with a
  413 problem (``payload_too_large``). A ``Content-Length`` over the limit is refused before one
  byte is read; a body without one (chunked) is counted as it streams and cut off at the limit, so
  neither a JSON parser nor the multipart spooler ever holds more than the limit.
* :class:`FiniteJsonMiddleware`: a JSON body holding ``NaN``, ``Infinity`` or a number past a
  double's range is refused with a 422 problem (``non_finite_number``).
* :class:`RateLimitMiddleware`: writes (POST, PUT, PATCH, DELETE) are limited per token, and every
  request without a valid token per client address; over the limit → 429 problem
  (``rate_limited``) with ``Retry-After`` in seconds. A route may have a rate of its own
  (:class:`RouteRate`, ``ServiceSpec.route_rates``): requests to it are limited per client
  address as well, token or not (the registry's public certificate lookup, cheap to guess at).
  Buckets are in-process (:class:`~libs.common.resilience.TokenBucket`): each replica limits
  on its own.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.problems import problem
from libs.common.resilience import TokenBucket

MiB = 1024 * 1024
DEFAULT_BODY_LIMIT = 1 * MiB
# a multipart body carries the file plus boundaries and part headers
MULTIPART_OVERHEAD = 64 * 1024


class BodyTooLarge(HTTPException):
    """The body passed its limit while streaming; FastAPI re-raises it from body parsing, and the
    problem handlers (or :class:`BodyLimitMiddleware`) answer 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


def too_large(limit: int) -> JSONResponse:
    """The 413 problem of a body over ``limit`` bytes."""
    return problem(
        413,
        "payload_too_large",
        "The request body is too large",
        f"at most {limit} bytes may be sent to this endpoint",
        max_bytes=limit,
    )


async def body_too_large_handler(request: Request, exc: Exception) -> JSONResponse:
    """The exception handler for :class:`BodyTooLarge` raised while a route reads its body."""
    assert isinstance(exc, BodyTooLarge)
    return too_large(exc.limit)


def _pattern(route: str) -> tuple[str, re.Pattern[str]]:
    method, _, path = route.partition(" ")
    regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
    return method.upper(), re.compile(f"^{regex}$")


class BodyLimitMiddleware:
    """Per-route body limits: ``limits`` maps ``"POST /v1/persons/batch"`` (path parameters as
    ``{name}``) to bytes; every other request may send ``default`` bytes."""

    def __init__(
        self, app: ASGIApp, *, default: int = DEFAULT_BODY_LIMIT, limits: Mapping[str, int] = {}
    ) -> None:
        self.app = app
        self.default = default
        self.routes = [(*_pattern(route), limit) for route, limit in limits.items()]

    def limit_of(self, method: str, path: str) -> int:
        for route_method, regex, limit in self.routes:
            if route_method == method and regex.match(path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope["method"], scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            # answered before one byte is read; the server closes the connection after it
            await too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await too_large(limit)(scope, receive, send)


# --- numbers in JSON bodies -------------------------------------------------------------------


class _NotFinite(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e309: Python's json reads it as inf
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> float:  # NaN, Infinity, -Infinity
    raise _NotFinite(text)


def non_finite_number(body: bytes) -> str | None:
    """The first NaN, Infinity or number beyond a double's range in a JSON ``body`` (Python's
    json module accepts all three, and pydantic lets a ``float`` field take them), else None; a
    body that is not JSON is left to the route's own parser (and its 422)."""
    try:
        json.loads(body, parse_float=_finite_float, parse_constant=_no_constant)
    except _NotFinite as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None


class FiniteJsonMiddleware:
    """A JSON request body holding ``NaN``, ``Infinity`` or a number past ±1.8e308 is refused
    with a 422 problem (``non_finite_number``) before any route sees it: no such value is a
    number of hours, a year or a count. Runs inside :class:`BodyLimitMiddleware`, so the body it
    reads is already bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(Headers(scope=scope).get("content-type")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        last: Message = {"type": "http.request", "body": b"", "more_body": False}
        while True:
            last = await receive()
            if last["type"] != "http.request":
                break
            chunks.append(last.get("body", b""))
            if not last.get("more_body", False):
                break
        body = b"".join(chunks)
        found = non_finite_number(body) if body else None
        if found is not None:
            await problem(
                422,
                "non_finite_number",
                "The request holds a value that is not a finite number",
                f"{found[:40]} is not a number here: send finite JSON numbers",
                value=found[:40],
            )(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            if last["type"] != "http.request":
                return last
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


# --- rate limits -----------------------------------------------------------------------------

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RateBuckets:
    """One :class:`TokenBucket` per key, the least recently used dropped beyond ``max_keys``."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (leave the buckets out to turn limits off)")
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0.0 if ``key`` may go on now, else the seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.wait_s()


@dataclass(frozen=True)
class RouteRate:
    """A route's own rate: ``limit`` requests per ``window_s`` per client address (a burst of
    ``limit``, then refilled at ``limit / window_s`` a second)."""

    limit: int
    window_s: float = 60.0

    def buckets(self) -> RateBuckets:
        return RateBuckets(rate=self.limit / self.window_s, burst=self.limit)


class RateLimitMiddleware:
    """429 with ``Retry-After`` once a caller spends its bucket.

    ``identify(scope)`` names the caller of a request: the token's subject if the bearer token
    is valid, else ``None`` — then the client address is the key (and reads count too).
    ``routes`` maps ``"GET /v1/certificates/{code}"`` (path parameters as ``{name}``, as
    :class:`BodyLimitMiddleware` takes them) to its own :class:`RouteRate`, per client
    address, checked after the limits above."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        identify: Callable[[Scope], Awaitable[str | None]],
        per_token: RateBuckets | None,
        per_address: RateBuckets | None,
        routes: Mapping[str, RouteRate] = {},
    ) -> None:
        self.app = app
        self.identify = identify
        self.per_token = per_token
        self.per_address = per_address
        self.routes = [(*_pattern(route), rate.buckets()) for route, rate in routes.items()]

    def _route_buckets(self, method: str, path: str) -> RateBuckets | None:
        for route_method, regex, buckets in self.routes:
            if route_method == method and regex.match(path):
                return buckets
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        caller = await self.identify(scope)
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = 0.0
        if caller is not None:
            if scope["method"] in WRITE_METHODS and self.per_token is not None:
                wait = self.per_token.take(caller)
        elif self.per_address is not None:
            wait = self.per_address.take(address)
        if wait <= 0 and (route := self._route_buckets(scope["method"], scope["path"])):
            wait = route.take(address)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            response = problem(
                429,
                "rate_limited",
                "Too many requests",
                f"slow down: try again in {retry_after} s",
                retry_after_s=retry_after,
            )
            response.headers["Retry-After"] = str(retry_after)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
