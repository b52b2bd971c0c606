"""The sync API on a real app (SQLite, lifespan, the province sender) against the province
simulator under uvicorn: city-platform records reach the province once, the queue and its summary,
reconciliation, and every 2xx JSON response checked against the app's OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from fastapi import FastAPI

from libs.common.settings import Settings
from services.sync.main import create_app
from services.sync.models import OutboundRecord
from services.sync.state import sync_of
from services.sync.tests.test_province import RunningSimulator, StartSimulator
from services.sync.tests.test_province import start_simulator as start_simulator
from tests.support import OpenApiResponses, until

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

ID_NUMBER = "11010519491231002X"
RECORD = {
    "record_id": "zzzj-2026-000001",
    "id_number": ID_NUMBER,
    "year": 2026,
    "subject": "public",
    "hours": 30,
    "course": "公需科目：人工智能与数字技术",
    "completed_at": "2026-06-01T10:00:00+08:00",
}


@dataclass
class Sync:
    app: FastAPI
    http: httpx.AsyncClient
    province: RunningSimulator
    responses: OpenApiResponses

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.app.state.tokens.mint(role=role)}"}

    async def reconcile(self) -> dict[str, Any]:
        r = await self.http.post(
            "/v1/reconciliations", json={"year": 2026}, headers=self.auth("city_admin")
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def settings_for(data_dir: Path, province_url: str) -> Settings:
    return Settings(
        service="sync",
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'sync.db'}",
        outbox_poll_s=0.2,
        province_url=province_url,
    )


@pytest.fixture
async def sync(tmp_path: Path, start_simulator: StartSimulator) -> AsyncIterator[Sync]:
    province = start_simulator()
    app = create_app(settings_for(tmp_path, province.url))
    responses = OpenApiResponses(app.openapi())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sync", event_hooks={"response": [responses.hook]}
        ) as http:
            yield Sync(app, http, province, responses)


async def test_city_records_reach_the_province_and_reconcile(sync: Sync) -> None:
    bad = {**RECORD, "record_id": "zzzj-2026-000002", "id_number": "110105194912310021"}
    r = await sync.http.post(
        "/v1/learning-records",
        json={"records": [RECORD, RECORD, bad]},
        headers=sync.auth("system"),
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert [x["record_id"] for x in body["rejected"]] == ["zzzj-2026-000002"]

    async def registered() -> list[dict[str, Any]]:
        r = await sync.http.get(
            "/v1/sync/records", params={"status": "registered"}, headers=sync.auth("city_admin")
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    [record] = await until(registered)
    assert record["record_id"] == "city-zzzj-2026-000001"
    assert (record["source"], record["status"], record["hours"]) == (
        "city_platform",
        "registered",
        30,
    )
    assert record["receipt"] and record["registered_at"]

    summary = await sync.http.get("/v1/sync/summary", headers=sync.auth("ops"))
    assert summary.json()["records"] == {"registered": 1}
    assert (summary.json()["pending"], summary.json()["in_flight"]) == (0, 0)
    assert summary.json()["circuit_breaker"] == "closed"
    # the e-learning platform's integration reads the status of its records, and nothing else
    async with sync.app.state.service.sessionmaker() as session:
        session.add(
            OutboundRecord(
                id="claim-c1-r1-public",
                source="claim",
                claim_id="c1",
                year=2026,
                subject="public",
                hours=2,
                category="training",
                title="t",
                completed_at=datetime(2026, 5, 1, tzinfo=UTC),
                status="voided",
            )
        )
        await session.commit()
    everything = await sync.http.get("/v1/sync/records", headers=sync.auth("ops"))
    assert len(everything.json()["items"]) == 2
    system = sync.auth("system")
    mine = await sync.http.get("/v1/sync/records", headers=system)
    assert [r["record_id"] for r in mine.json()["items"]] == ["city-zzzj-2026-000001"]
    for path in ("/v1/sync/summary", "/v1/admin/dead-letters"):
        assert (await sync.http.get(path, headers=system)).status_code == 403
    refused = await sync.http.post("/v1/reconciliations", json={"year": 2026}, headers=system)
    assert refused.status_code == 403

    clean = await sync.reconcile()
    assert clean == {
        "year": 2026,
        "checked": 1,
        "matched": 1,
        "mismatched": [],
        "repair": {"applied": False, "requeue": [], "void": []},
    }
    stray = {
        "record_id": "elsewhere-1",
        "id_number": "110105195001010012",
        "name": "李四",
        "year": 2026,
        "subject": "public",
        "hours": 4,
        "category": "training",
        "title": "外地登记",
        "source": "claim",
        "completed_at": "2026-05-01T00:00:00Z",
    }
    async with httpx.AsyncClient(base_url=sync.province.url) as province:
        sent = await province.post("/province/v1/records", json={"records": [stray]})
        assert sent.status_code == 200, sent.text
    mismatch = await sync.reconcile()
    assert (mismatch["checked"], mismatch["matched"]) == (2, 1)
    assert mismatch["mismatched"] == [
        {
            "person_id": None,
            "id_number_masked": "110105********0012",
            "ours": {"public": 0.0, "professional": 0.0},
            "province": {"public": 4.0, "professional": 0.0},
        }
    ]
    # a dry run by default: what a repair would do, nothing done
    assert mismatch["repair"] == {"applied": False, "requeue": [], "void": ["elsewhere-1"]}

    letters = await sync.http.get("/v1/admin/dead-letters", headers=sync.auth("city_admin"))
    assert letters.json()["items"] == []
    health = (await sync.http.get("/healthz")).json()
    assert (health["status"], health["service"], health["instance"]) == ("ok", "sync", ANY)
    ready = await sync.http.get("/readyz")
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok"}}
    # learning records, records (polled), summary, 2 reconciliations, dead letters, health, ready
    assert sync.responses.checked >= 8


async def test_the_lifespan_that_opens_the_province_client_closes_it(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    province = start_simulator()
    app = create_app(settings_for(tmp_path, province.url))
    async with app.router.lifespan_context(app):
        client = sync_of(app.state.service).province_client
        assert not client._http.is_closed
        assert [t async for t in client.iter_totals(2026)] == []  # it talks to the province
    assert client._http.is_closed
