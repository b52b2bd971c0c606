"""A request that meets the database away (restarting, unreachable) is told 503 with
Retry-After, not 500: nothing was changed and the same request will work shortly. Any other
unexpected error stays a 500 (and is logged with its stack)."""

from __future__ import annotations

import socket

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from libs.common.problems import install_problem_handlers


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket closes


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    engine = create_async_engine(f"postgresql+asyncpg://ce@127.0.0.1:{_closed_port()}/ce")

    @app.get("/db")
    async def db() -> int:
        async with engine.connect() as connection:  # the server is not there
            return int(await connection.scalar(text("SELECT 1")) or 0)

    @app.get("/bug")
    async def bug() -> int:
        raise ValueError("a bug, not an outage")

    return app


async def test_the_database_away_is_503_with_retry_after_and_a_bug_is_500() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        away = await http.get("/db")
        bug = await http.get("/bug")
    assert away.status_code == 503, away.text
    assert away.headers["retry-after"] == "2"
    assert away.headers["content-type"] == "application/problem+json"
    assert (away.json()["code"], away.json()["retry_after_s"]) == ("service_unavailable", 2)
    assert bug.status_code == 500 and bug.json()["code"] == "internal_error"
