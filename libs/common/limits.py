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
  The buckets live in a :class:`RateStore`: in the process (:class:`MemoryRateStore`, the
  default and the embedded stack's), or in Redis (:class:`RedisRateStore`,
  ``CE_RATE_LIMIT_STORAGE=redis://…``), where every replica of a service spends one budget.
  Redis unreachable → each replica falls back to its own buckets until Redis answers again
  (fail open to the per-replica limit: never unlimited, never refusing everyone).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.problems import problem
from libs.common.resilience import TokenBucket

log = logging.getLogger(__name__)

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
class Rate:
    """A limit: ``rate`` requests a second with bursts of ``burst``, one budget per key.
    ``name`` tells limits apart in a shared store (``write``, ``anonymous``, a route)."""

    name: str
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive (leave the limit out to turn it off)")


class RateStore(Protocol):
    """Where the buckets of :class:`Rate` limits live."""

    async def take(self, rate: Rate, key: str) -> float:
        """0.0 if ``key`` may go on now (a token taken), else the seconds until it may."""
        ...

    async def aclose(self) -> None: ...


class MemoryRateStore:
    """The buckets in this process: each replica limits on its own."""

    def __init__(self, *, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._limits: dict[Rate, RateBuckets] = {}

    async def take(self, rate: Rate, key: str) -> float:
        buckets = self._limits.get(rate)
        if buckets is None:
            buckets = self._limits[rate] = RateBuckets(
                rate.rate, rate.burst, max_keys=self.max_keys
            )
        return buckets.take(key)

    async def aclose(self) -> None:
        self._limits.clear()


# A token bucket in Redis, atomically (one script), on Redis's clock (replicas' clocks differ):
# the state is {tokens, ts}; refilled at ARGV[1]/s up to ARGV[2]; the wait comes back as text
# (Lua numbers become integers on the way out). Idle buckets expire once they would be full.
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateStore:
    """The buckets in Redis under ``prefix``: every replica that names the same Redis and
    prefix spends one budget per key.

    Redis failing (down, slow past ``timeout_s``) → the request is counted in this replica's
    own :class:`MemoryRateStore` instead, and Redis is tried again after ``retry_s``; the
    outage and the recovery are logged once each. The limit then holds per replica (N replicas
    allow N times the rate) until Redis is back: failing open to that, rather than refusing
    every request or none, keeps the service up and still bounded."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_s: float = 0.25,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from redis.asyncio import Redis

        self.prefix = prefix
        self.timeout_s, self.retry_s, self._clock = timeout_s, retry_s, clock
        self.fallback = MemoryRateStore()
        self._redis = Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        self._script = self._redis.register_script(_TAKE_SCRIPT)
        self._down_until: float | None = None

    @property
    def degraded(self) -> bool:
        """True while Redis is taken as down (the buckets are this replica's own)."""
        return self._down_until is not None

    async def take(self, rate: Rate, key: str) -> float:
        if self._down_until is not None and self._clock() < self._down_until:
            return await self.fallback.take(rate, key)
        try:
            async with asyncio.timeout(self.timeout_s):
                wait = await self._script(
                    keys=[f"{self.prefix}{rate.name}:{key}"], args=[rate.rate, rate.burst]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            if self._down_until is None:
                log.warning(
                    "rate-limit store unreachable; limiting per replica until it answers",
                    extra={"error": type(exc).__name__},
                )
            self._down_until = self._clock() + self.retry_s
            return await self.fallback.take(rate, key)
        if self._down_until is not None:
            log.info("rate-limit store reachable again; limits are shared")
            self._down_until = None
        return float(wait)

    async def aclose(self) -> None:
        await self._redis.aclose()


def rate_store(storage: str, *, prefix: str) -> RateStore:
    """The store ``CE_RATE_LIMIT_STORAGE`` names: ``memory`` or a ``redis://`` /
    ``rediss://`` / ``unix://`` URL (keys under ``prefix``)."""
    if storage == "memory":
        return MemoryRateStore()
    return RedisRateStore(storage, prefix=prefix)


@dataclass(frozen=True)
class RouteRate:
    """A route's own rate: ``limit`` requests per ``window_s`` per client address (a burst of
    ``limit``, then refilled at ``limit / window_s`` a second)."""

    limit: int
    window_s: float = 60.0

    def rate(self, route: str) -> Rate:
        return Rate(f"route:{route}", rate=self.limit / self.window_s, burst=self.limit)


class RateLimitMiddleware:
    """429 with ``Retry-After`` once a caller spends its bucket.

    ``identify(scope)`` names the caller of a request: the token's subject if the bearer token
    is valid, else ``None`` — then the client address is the key (and reads count too).
    ``routes`` maps ``"GET /v1/certificates/{code}"`` (path parameters as ``{name}``, as
    :class:`BodyLimitMiddleware` takes them) to its own :class:`RouteRate`, per client
    address, checked after the limits above. The buckets are in ``store``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        identify: Callable[[Scope], Awaitable[str | None]],
        store: RateStore,
        per_token: Rate | None,
        per_address: Rate | None,
        routes: Mapping[str, RouteRate] = {},
    ) -> None:
        self.app = app
        self.identify = identify
        self.store = store
        self.per_token = per_token
        self.per_address = per_address
        self.routes = [(*_pattern(route), rate.rate(route)) for route, rate in routes.items()]

    def _route_rate(self, method: str, path: str) -> Rate | None:
        for route_method, regex, rate in self.routes:
            if route_method == method and regex.match(path):
                return rate
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
                wait = await self.store.take(self.per_token, caller)
        elif self.per_address is not None:
            wait = await self.store.take(self.per_address, address)
        if wait <= 0 and (route := self._route_rate(scope["method"], scope["path"])):
            wait = await self.store.take(route, address)
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
