"""Fast in-process tests of the console's pages: a real review app (its lifespan, database and
event consumer) reached through ``httpx.ASGITransport``, the console in front of it with the
same dev key, and a browser-like client (cookies kept) driving the console's forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from console.app import create_app
from console.settings import ConsoleSettings
from services.review.tests.support import Review, review_app

pytest_plugins = ["tests.fixtures.hypothesis_profile"]

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    app: object
    http: httpx.AsyncClient
    review: Review

    @property
    def calls(self) -> int:
        """Requests the console has sent to the services so far."""
        return int(self.app.state.clients.requests_sent)  # type: ignore[attr-defined]

    async def csrf(self, path: str = "/login") -> str:
        page = await self.http.get(path)
        match = CSRF.search(page.text)
        assert match, page.text
        return match.group(1)

    async def sign_in(self, role: str, org: str | None = None) -> None:
        token = await self.csrf()
        org_id = self.review.orgs[org] if org else ""
        r = await self.http.post(
            "/login", data={"csrf_token": token, "role": role, "org_id": org_id, "person_id": ""}
        )
        assert r.status_code == 303, r.text


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async with review_app(tmp_path / "review") as review:
        settings = ConsoleSettings(data_dir=tmp_path / "review", review_url="http://review")
        # claims, registry and sync are not running here: pages show what they cannot read
        app = create_app(settings, {"review": httpx.ASGITransport(app=review.app)})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
            yield Console(app, http, review)
