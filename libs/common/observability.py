"""JSON logs carrying the correlation id, a redaction net for resident ID numbers and tokens,
and Prometheus metrics per app."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.context import correlation_id
from libs.common.idnumber import mask_id_numbers_in

# Resident ID numbers and bearer tokens never reach a log line, whatever the caller did.
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    text = mask_id_numbers_in(text)
    text = _BEARER.sub(r"\1[redacted]", text)
    return _JWT.sub("[redacted-token]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.events_handled = Counter(
            "events_handled_total",
            "Consumed events by type and outcome",
            ["service", "event_type", "outcome"],
            registry=self.registry,
        )
        # alert on any increase: a consumer was down longer than the topic's retention
        self.offsets_lost = Counter(
            "bus_offsets_out_of_range_total",
            "Partitions whose committed offset was no longer in the log (events skipped unread)",
            ["service", "topic", "partition"],
            registry=self.registry,
        )
        # a service's scrape-time refresh (``ServiceSpec.metrics_refresh``) that failed or
        # timed out: that scrape showed the values of the refresh before
        self.refresh_failures = Counter(
            "metrics_refresh_failures_total",
            "Scrape-time gauge refreshes that failed or timed out",
            ["service", "reason"],
            registry=self.registry,
        )
        self.service = service

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestContextMiddleware:
    """Sets the correlation id (``X-Correlation-ID`` in, echoed out) and records metrics.

    Plain ASGI: the request runs in the server's task, with no extra task, stream or copy of
    the body as Starlette's ``BaseHTTPMiddleware`` makes per request. The correlation id is set
    for the whole request, the streamed body of a response included; the latency metric spans
    the request until its last body chunk is sent. An exception that escapes the app counts as
    a 500 and goes on to the server-error handler.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-correlation-id")
        cid = incoming if incoming and len(incoming) <= 64 else uuid.uuid4().hex
        echoed = (b"x-correlation-id", cid.encode("latin-1"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = correlation_id.set(cid)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        path = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        metrics = self.metrics
        metrics.requests.labels(metrics.service, method, path, str(status)).inc()
        metrics.latency.labels(metrics.service, method, path).observe(elapsed)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
