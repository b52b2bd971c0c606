"""The request-context middleware (plain ASGI): the correlation id in and out, metrics by route
and status, streamed bodies under the same id, and an escaping exception counted as a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from libs.common.context import correlation_id
from libs.common.observability import Metrics, RequestContextMiddleware


def _app() -> tuple[FastAPI, Metrics]:
    metrics = Metrics("t")
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, object]:
        return {"item": item_id, "cid": correlation_id.get()}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def lines() -> AsyncIterator[str]:
            for n in range(3):
                yield f"{n},{correlation_id.get()}\n"

        return StreamingResponse(lines(), media_type="text/csv")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return app, metrics


def _count(metrics: Metrics, route: str, status: str, method: str = "GET") -> float:
    value = metrics.registry.get_sample_value(
        "http_requests_total",
        {"service": "t", "method": method, "route": route, "status": status},
    )
    return value or 0.0


async def test_correlation_id_is_echoed_set_for_the_handler_and_metrics_name_the_route() -> None:
    app, metrics = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/items/7", headers={"X-Correlation-ID": "abc-123"})
        assert r.status_code == 200
        assert r.headers["X-Correlation-ID"] == "abc-123"
        assert r.json() == {"item": 7, "cid": "abc-123"}

        # none given, or one too long to trust: a fresh one, echoed and seen by the handler
        for headers in ({}, {"X-Correlation-ID": "x" * 65}):
            r = await client.get("/items/8", headers=headers)
            cid = r.headers["X-Correlation-ID"]
            assert len(cid) == 32 and r.json()["cid"] == cid

        r = await client.get("/items/not-a-number")
        assert r.status_code == 422 and "X-Correlation-ID" in r.headers
        r = await client.get("/nowhere")
        assert r.status_code == 404

    assert _count(metrics, "/items/{item_id}", "200") == 3
    assert _count(metrics, "/items/{item_id}", "422") == 1
    assert _count(metrics, "unmatched", "404") == 1
    latency = metrics.registry.get_sample_value(
        "http_request_duration_seconds_count",
        {"service": "t", "method": "GET", "route": "/items/{item_id}"},
    )
    assert latency == 4
    assert correlation_id.get() is None  # reset after the request


async def test_a_streamed_body_carries_the_id_and_an_escaping_error_counts_as_500() -> None:
    app, metrics = _app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/stream", headers={"X-Correlation-ID": "s-1"})
        assert r.text == "0,s-1\n1,s-1\n2,s-1\n"
        assert r.headers["X-Correlation-ID"] == "s-1"
        r = await client.get("/boom")
        assert r.status_code == 500
    assert _count(metrics, "/stream", "200") == 1
    assert _count(metrics, "/boom", "500") == 1
