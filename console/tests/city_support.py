"""The console in process with real services behind it, for the pages of the city bureau and
the CE bases: a review app (the org tree of its test support, plus a CE base) and a registry app
that learns those orgs from review's own ``org.upserted`` events, optionally claims (reports)
and sync (operations); every app on SQLite in one data directory, so the console's dev sign-in
mints tokens with the same dev key the services verify. A :class:`Browser` signs in through
``/login`` and posts forms with the session's CSRF token, as a browser does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from console.app import create_app
from console.settings import ConsoleSettings
from libs.common.events import OrgUpserted, topic_of
from libs.common.settings import Settings
from services.claims.tests.harness import Stack as Claims
from services.claims.tests.harness import claims_stack
from services.registry.tests.support import Registry, registry_app
from services.review.tests.support import Review, review_app
from services.sync.main import create_app as create_sync

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
ALERT = re.compile(r'role="alert"[^>]*>(.*?)</', re.S)


@dataclass
class Browser:
    """The console as a browser uses it: a cookie jar, forms with the CSRF token."""

    http: httpx.AsyncClient
    csrf: str = ""

    async def get(self, path: str, **params: Any) -> httpx.Response:
        response = await self.http.get(path, params=params or None)
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def post(
        self, path: str, data: Mapping[str, Any] | None = None, files: Any = None
    ) -> httpx.Response:
        if not self.csrf:
            await self.get("/login")
        response = await self.http.post(
            path, data={**(data or {}), "csrf_token": self.csrf}, files=files
        )
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def follow(self, response: httpx.Response) -> httpx.Response:
        """The page a 303 after a POST leads to."""
        assert response.status_code == 303, response.text
        return await self.get(response.headers["location"])

    async def sign_in(self, role: str, org_id: str = "", person_id: str = "") -> None:
        self.http.cookies.clear()
        self.csrf = ""
        response = await self.post(
            "/login", {"role": role, "org_id": org_id, "person_id": person_id}
        )
        assert response.status_code == 303, response.text
        await self.get(response.headers["location"])


def alerts(page: httpx.Response) -> list[str]:
    """The text of every ``role="alert"`` element of a page."""
    return [re.sub(r"\s+", " ", a).strip() for a in ALERT.findall(page.text)]


@dataclass
class City:
    review: Review
    registry: Registry
    browser: Browser
    console: FastAPI
    claims: Claims | None = None
    sync: FastAPI | None = None
    provider: str = ""  # the CE base's org id
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """How many calls the console has made to the services so far."""
        return int(self.console.state.clients.requests_sent)

    async def org_to_registry(self, org_id: str) -> None:
        """Hand the org's latest ``org.upserted`` (as review wrote it) to the registry."""
        upserts = [e for e in await self.review.outbox(org_id) if e.type == "org.upserted"]
        event = OrgUpserted.model_validate(upserts[-1].data)
        await self.registry.publish(topic_of("review"), event, subject=org_id)
        if self.claims is not None:
            await self.claims.publish(topic_of("review"), event, subject=org_id)


@asynccontextmanager
async def city_console(
    data_dir: Path, *, with_claims: bool = False, with_sync: bool = False
) -> AsyncIterator[City]:
    async with AsyncExitStack() as stack:
        review = await stack.enter_async_context(review_app(data_dir))
        registry = await stack.enter_async_context(registry_app(data_dir))
        transports: dict[str, httpx.AsyncBaseTransport] = {
            "review": httpx.ASGITransport(app=review.app),
            "registry": httpx.ASGITransport(app=registry.app),
        }
        claims = None
        if with_claims:
            claims = await stack.enter_async_context(claims_stack(data_dir))
            transports["claims"] = httpx.ASGITransport(app=claims.app)
        sync = None
        if with_sync:
            sync = create_sync(
                Settings(
                    service="sync",
                    data_dir=data_dir,
                    database_url=f"sqlite+aiosqlite:///{data_dir / 'sync.db'}",
                    outbox_poll_s=0.2,
                    province_url="http://127.0.0.1:9",  # nothing listens: nothing is sent
                )
            )
            await stack.enter_async_context(sync.router.lifespan_context(sync))
            transports["sync"] = httpx.ASGITransport(app=sync)
        console = create_app(ConsoleSettings(env="test", data_dir=data_dir), transports)
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=console), base_url="http://console")
        )
        city = City(review, registry, Browser(http), console, claims, sync)
        city.provider = await review.add("PZ", "provider", "C")
        for org_id in review.orgs.values():
            await city.org_to_registry(org_id)
        yield city
