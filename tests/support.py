"""Helpers every test module shares: waiting for asynchronous effects, free ports, and what a
problem document must look like."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import jsonschema
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.common.events import Affiliation, ClaimSubmitted, Envelope
from libs.common.problems import PROBLEM_MEDIA_TYPE

T = TypeVar("T")


async def until(probe: Callable[[], Awaitable[Any]], timeout_s: float = 15.0) -> Any:
    """Await ``probe`` until it returns something truthy: events cross services asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def eventually(probe: Callable[[], T | None], timeout_s: float = 30.0, what: str = "") -> T:
    """:func:`until` for blocking code (tests that drive real processes over HTTP)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or probe}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem document with this status and code and a helpful detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"].endswith("/" + code)
    assert isinstance(body.get("detail"), str) and len(body["detail"]) >= 15, body
    return body


class OpenApiResponses:
    """Checks real responses against the app's own OpenAPI document: every 2xx JSON response must
    be documented for its route and status and validate against that schema. Use ``hook`` as an
    httpx response event hook; ``checked`` counts the responses validated."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.checked = 0
        self._routes: list[tuple[re.Pattern[str], dict[str, Any]]] = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), operations)
            for path, operations in sorted(
                document["paths"].items(), key=lambda item: item[0].count("{")
            )
        ]

    def check(self, response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "")
        if not 200 <= response.status_code < 300 or not content_type.startswith("application/json"):
            return
        request = response.request
        operation = next(
            (
                ops[request.method.lower()]
                for pattern, ops in self._routes
                if pattern.match(request.url.path) and request.method.lower() in ops
            ),
            None,
        )
        assert operation is not None, f"{request.method} {request.url.path} is not documented"
        documented = operation["responses"].get(str(response.status_code), {})
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        assert schema, f"{request.method} {request.url.path} {response.status_code}: no schema"
        validator = jsonschema.Draft202012Validator(
            {**schema, "components": self.document.get("components", {})}
        )
        errors = [e.message for e in validator.iter_errors(response.json())]
        assert not errors, f"{request.method} {request.url.path}: {errors[:3]}"
        self.checked += 1

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        self.check(response)


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target`` ("host:port") while up: a way to take a real
    server (PostgreSQL, the broker) away from a client and give it back. :meth:`down` closes the
    listener and every open connection, as a server restart does."""

    def __init__(self, target: str, port: int | None = None) -> None:
        host, target_port = target.rsplit(":", 1)
        self.target = (host, int(target_port))
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._pipes.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


def submitted(claim_id: str) -> Envelope:
    """A minimal ``claim.submitted`` as claims would publish it (for review-side consumers)."""
    return ClaimSubmitted(
        claim_id=claim_id,
        revision=1,
        person_id="p1",
        person_name="张三",
        id_number_masked="110105********002X",
        affiliation=Affiliation(kind="unit", org_id="u1"),
        year=2026,
        category="training",
        subject="professional",
        title="t",
        requested_hours=8,
        expected_credits=[],
    ).envelope(source="claims", subject=claim_id, correlation_id="c1")


# the tables the services' background work (outbox relay, consumer) polls on the same engine
_BACKGROUND_TABLES = ("outbox", "inbox", "dead_letters", "idempotency_keys")
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SELECT 1")


@contextmanager
def page_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs inside the block, as a growing list: what one request
    costs (a test of "no N+1" compares pages of different sizes). Left out: transaction control,
    the pool's ping, and the background work that polls the same engine meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        text = statement.strip()
        if text.upper().startswith(_TRANSACTION_CONTROL):
            return
        if any(f" {table}" in text for table in _BACKGROUND_TABLES):
            return
        seen.append(text)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
