"""The province queue under bad data, refused voids, two replicas and drift (issue 7, items 1, 8,
9, 10): real sync apps (lifespan, the sender and the scheduled reconciliation running) against the
province simulator under uvicorn, on SQLite and, for two replicas, on one PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from libs.common.events import Envelope
from libs.common.service import ServiceState
from libs.common.settings import Settings
from libs.contracts.province import ProvinceRecord, Receipt
from services.sync.main import create_app
from services.sync.models import OutboundRecord
from services.sync.province import ProvinceClient, ProvinceUnavailable
from services.sync.sender import VOID_MAX_ATTEMPTS
from services.sync.state import sync_of
from services.sync.tests.test_province import StartSimulator, id_number
from services.sync.tests.test_province import start_simulator as start_simulator
from simulators.province.app import create_simulator_app
from tests.support import until

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

YEAR = 2026


def settings_for(database_url: str, province_url: str, **extra: Any) -> Settings:
    return Settings(
        service="sync",
        database_url=database_url,
        outbox_poll_s=0.2,
        province_url=province_url,
        province_timeout_s=2.0,
        province_rate_limit_per_s=1000.0,
        **extra,
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sync") as http:
            yield app, http


def state_of(app: FastAPI) -> ServiceState:
    state: ServiceState = app.state.service
    return state


def city(app: FastAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.tokens.mint(role='city_admin')}"}


def outbound(n: int, **fields: Any) -> OutboundRecord:
    values: dict[str, Any] = {
        "id": f"claim-{n:05d}-r1-public",
        "source": "claim",
        "claim_id": f"c-{n:05d}",
        "person_id": f"p-{n % 7}",
        "id_number": id_number(n % 7),
        "name": f"Person {n % 7}",
        "year": YEAR,
        "subject": "public",
        "hours": 2.0,
        "category": "training",
        "title": f"Course {n}",
        "completed_at": datetime(2026, 6, 1, tzinfo=UTC),
        "status": "pending",
        "attempts": 0,
        # ordered by creation: the first rows are the first the sender takes
        "created_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
    }
    values.update(fields)
    return OutboundRecord(**values)


async def add(app: FastAPI, records: Sequence[OutboundRecord]) -> None:
    async with state_of(app).uow() as uow:
        uow.session.add_all(records)
        await uow.commit()


async def statuses(app: FastAPI) -> dict[str, OutboundRecord]:
    async with state_of(app).uow() as uow:
        rows = (await uow.session.scalars(select(OutboundRecord))).all()
    return {r.id: r for r in rows}


async def test_records_the_province_contract_cannot_carry_fail_alone(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    province = start_simulator()
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    bad = [
        outbound(1, name="   "),  # whitespace-only name
        outbound(2, name="长" * 80),  # longer than the province's 64
        outbound(3, title="课" * 290),  # longer than the province's 256
        outbound(4, source="city_platform", id_number="12345", claim_id=None),  # malformed
    ]
    good = [outbound(5), outbound(6)]
    async with running(settings_for(url, province.url)) as (app, http):
        await add(app, bad + good)

        async def settled() -> dict[str, OutboundRecord] | None:
            rows = await statuses(app)
            return rows if all(r.status != "pending" for r in rows.values()) else None

        rows = await until(settled, timeout_s=20)
        assert {r.id for r in rows.values() if r.status == "registered"} == {g.id for g in good}
        failed = await http.get("/v1/sync/records", params={"status": "failed"}, headers=city(app))
        assert failed.status_code == 200
        reasons = {item["record_id"]: item["last_error"] for item in failed.json()["items"]}
        assert set(reasons) == {b.id for b in bad}
        assert "name" in reasons[bad[0].id] and "blank" in reasons[bad[0].id]
        assert "name" in reasons[bad[1].id] and "64" in reasons[bad[1].id]
        assert "title" in reasons[bad[2].id]
        assert "id_number" in reasons[bad[3].id] and "12345" not in reasons[bad[3].id]
        assert all(r.startswith("province_contract:") for r in reasons.values())
        summary = (await http.get("/v1/sync/summary", headers=city(app))).json()
        assert (summary["pending"], summary["failed"], summary["in_flight"]) == (0, 4, 0)
    assert (await province.stats())["records"] == 2


async def test_a_refused_void_backs_off_gives_up_and_blocks_no_other(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    province = start_simulator()
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    async with running(settings_for(url, province.url)) as (app, _http):
        await add(app, [outbound(n) for n in (1, 2, 3)])
        await until(
            lambda: _all_in(app, {"registered"}),
            timeout_s=20,
        )
        # the province refuses to void a record id it cannot even address (422), which comes
        # first; the two real ones behind it must be voided all the same
        refused = outbound(0, id="bad record id", status="registered")
        await add(app, [refused])
        async with state_of(app).uow() as uow:
            await uow.session.execute(
                update(OutboundRecord).values(status="void_pending", next_attempt_at=None)
            )
            await uow.commit()

        async def others_voided() -> bool:
            rows = await statuses(app)
            return all(r.status == "voided" for k, r in rows.items() if k != refused.id)

        await until(others_voided, timeout_s=20)
        rows = await statuses(app)
        first = rows[refused.id]
        assert first.status == "void_pending" and first.attempts >= 1
        assert first.next_attempt_at is not None and first.next_attempt_at > datetime.now(UTC)
        assert first.last_error and first.last_error.startswith("void refused:")
        # backoff: make it due again each time until the cap, then it is void_failed for good
        for _ in range(VOID_MAX_ATTEMPTS):
            async with state_of(app).uow() as uow:
                await uow.session.execute(
                    update(OutboundRecord)
                    .where(OutboundRecord.id == refused.id, OutboundRecord.status == "void_pending")
                    .values(next_attempt_at=None)
                )
                await uow.commit()
            before = (await statuses(app))[refused.id].attempts

            async def tried(before: int = before) -> bool:
                record = (await statuses(app))[refused.id]
                return record.attempts > before or record.status == "void_failed"

            await until(tried, timeout_s=10)
        final = (await statuses(app))[refused.id]
        assert (final.status, final.attempts) == ("void_failed", VOID_MAX_ATTEMPTS)
        # each claim hears how its void ended (its sync_status: voided / void_failed)
        told = await voids_told(app)
        assert told["sync.record_voided"] == {f"c-{n:05d}" for n in (1, 2, 3)}
        assert told["sync.record_void_failed"] == {"c-00000"}
    assert (await province.stats())["voided"] == 3


async def voids_told(app: FastAPI) -> dict[str, set[str]]:
    """The claims the sync outbox told of a voided / refused void, by event type."""
    state = state_of(app)
    table = state.spec.infra.outbox
    async with state.sessionmaker() as session:
        rows = (await session.execute(select(table.c.payload))).all()
    told: dict[str, set[str]] = {"sync.record_voided": set(), "sync.record_void_failed": set()}
    for row in rows:
        envelope = Envelope.from_bytes(bytes(row.payload))
        if envelope.type in told:
            told[envelope.type].add(str(envelope.data["claim_id"]))
    return told


async def _all_in(app: FastAPI, wanted: set[str]) -> bool:
    rows = await statuses(app)
    return bool(rows) and all(r.status in wanted for r in rows.values())


def _spy(client: ProvinceClient, sent: list[str], meet: asyncio.Barrier | None = None) -> None:
    """Record every record id this replica's client sends; with ``meet``, the replica's first send
    waits (bounded) until the other replica has a batch in hand too."""
    original = client.register

    async def register(records: Sequence[ProvinceRecord]) -> list[Receipt]:
        first = not sent
        sent.extend(r.record_id for r in records)
        if first and meet is not None:
            async with asyncio.timeout(30):
                await meet.wait()
        return await original(records)

    client.register = register  # type: ignore[method-assign]


@pytest.fixture
def pg_url(make_pg_database: Callable[[str], str]) -> str:
    return make_pg_database("sync2")


@pytest.mark.postgres
async def test_two_replicas_on_one_postgresql_database_split_the_work(
    pg_url: str, start_simulator: StartSimulator
) -> None:
    province = start_simulator()
    url = pg_url
    sent: dict[str, list[str]] = {"a": [], "b": []}
    # Each replica holds its first batch until the other holds one as well: with the claim
    # (SKIP LOCKED and a lease) working, they meet on two different batches; without it, they
    # would take the same rows (caught below). No timing luck needed.
    meet = asyncio.Barrier(2)
    async with AsyncExitStack() as stack:
        app_a, _ = await stack.enter_async_context(running(settings_for(url, province.url)))
        app_b, http_b = await stack.enter_async_context(running(settings_for(url, province.url)))
        _spy(sync_of(state_of(app_a)).province_client, sent["a"], meet)
        _spy(sync_of(state_of(app_b)).province_client, sent["b"], meet)
        total = 600
        for start in range(0, total, 100):  # in waves, so both replicas find work
            await add(app_a, [outbound(n) for n in range(start, start + 100)])
        await until(lambda: _all_in(app_a, {"registered"}), timeout_s=60)

        async def scraped() -> str | None:
            # the gauges are refreshed by the scrape itself; the records registered meanwhile
            text = (await http_b.get("/metrics")).text
            return text if 'sync_records{status="registered"} 600.0' in text else None

        metrics = await until(scraped, timeout_s=10)
    assert sent["a"] and sent["b"], "both replicas must have sent records"
    assert not set(sent["a"]) & set(sent["b"]), "a record was sent by both replicas"
    assert len(sent["a"]) + len(sent["b"]) == total  # each record sent exactly once
    stats = await province.stats()
    assert stats["records"] == total
    assert 'sync_records{status="registered"}' in metrics
    assert "outbox_oldest_unpublished_age_seconds" in metrics


async def test_metrics_show_old_pending_records_and_their_age(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    province = start_simulator()
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    async with running(settings_for(url, province.url)) as (app, http):
        # waiting in backoff since an hour: old, not due
        stale = datetime.now(UTC) - timedelta(hours=1)
        later = datetime.now(UTC) + timedelta(hours=1)
        await add(app, [outbound(1, created_at=stale, next_attempt_at=later)])

        async def gauge() -> float | None:
            text = (await http.get("/metrics")).text
            for line in text.splitlines():
                if line.startswith('sync_oldest_record_age_seconds{status="pending"}'):
                    value = float(line.split()[-1])
                    return value if value > 0 else None
            return None

        age = await until(gauge, timeout_s=10)
        assert 3500 < age < 3700
        summary = (await http.get("/v1/sync/summary", headers=city(app))).json()
        assert summary["pending"] == 1 and 3500 < summary["oldest_pending_age_s"] < 3700


def gauge_of(metrics: str, series: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


async def test_a_scrape_shows_the_queue_as_it_is_at_the_scrape(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """Each scrape refreshes the gauges first (one query): a record queued just before the
    scrape is counted by it, not one sender pass later."""
    province = start_simulator()
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    later = datetime.now(UTC) + timedelta(hours=1)  # queued, not due: the sender leaves them
    async with running(settings_for(url, province.url)) as (app, http):
        for n in (1, 2, 3):
            await add(app, [outbound(n, next_attempt_at=later)])
            text = (await http.get("/metrics")).text  # once, right after: no waiting
            assert gauge_of(text, 'sync_records{status="pending"}') == n, text
        assert gauge_of(text, "sync_records_in_flight") == 0
        assert "metrics_refresh_failures_total{" not in text


async def _drift(app: FastAPI, province_url: str) -> tuple[str, str]:
    """A record we hold as registered that the province lacks, and one the province holds that
    we voided: returns their ids."""
    lacking = outbound(1, status="registered", receipt="lost", registered_at=datetime.now(UTC))
    held = outbound(2, status="voided", id_number=lacking.id_number, name=lacking.name, hours=3.0)
    await add(app, [lacking, held])
    record = {
        "record_id": held.id,
        "id_number": held.id_number,
        "name": held.name,
        "year": YEAR,
        "subject": "public",
        "hours": 3.0,
        "category": "training",
        "title": held.title,
        "source": "claim",
        "completed_at": "2026-06-01T00:00:00Z",
    }
    async with httpx.AsyncClient(base_url=province_url) as province:
        r = await province.post("/province/v1/records", json={"records": [record]})
        assert r.status_code == 200, r.text
    return lacking.id, held.id


async def test_reconciliation_repairs_on_request_and_is_a_dry_run_by_default(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    province = start_simulator()
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    async with running(settings_for(url, province.url)) as (app, http):
        lacking, held = await _drift(app, province.url)

        async def reconcile(**body: Any) -> dict[str, Any]:
            r = await http.post(
                "/v1/reconciliations", json={"year": YEAR, **body}, headers=city(app)
            )
            assert r.status_code == 200, r.text
            result: dict[str, Any] = r.json()
            return result

        dry = await reconcile()
        assert dry["repair"] == {"applied": False, "requeue": [lacking], "void": [held]}
        assert len(dry["mismatched"]) == 1
        assert (await statuses(app))[lacking].status == "registered"  # nothing done
        done = await reconcile(repair=True)
        assert done["repair"] == {"applied": True, "requeue": [lacking], "void": [held]}

        async def repaired() -> dict[str, Any] | None:
            again = await reconcile()
            rows = await statuses(app)
            settled = (rows[lacking].status, rows[held].status) == ("registered", "voided")
            return again if settled and not again["mismatched"] else None

        clean = await until(repaired, timeout_s=20)
        assert clean["repair"] == {"applied": False, "requeue": [], "void": []}
        rows = await statuses(app)
        assert (rows[lacking].status, rows[held].status) == ("registered", "voided")
    assert await province.stats() == {**await province.stats(), "records": 2, "voided": 1}


async def test_the_scheduled_reconciliation_repairs_by_itself(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    province = start_simulator()
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    settings = settings_for(url, province.url, reconcile_interval_s=0.3)
    async with running(settings) as (app, _http):
        lacking, held = await _drift(app, province.url)

        async def repaired() -> bool:
            stats = await province.stats()
            rows = await statuses(app)
            settled = (rows[lacking].status, rows[held].status) == ("registered", "voided")
            return settled and (stats["records"], stats["voided"]) == (2, 1)

        await until(repaired, timeout_s=20)
        rows = await statuses(app)
        assert (rows[lacking].status, rows[held].status) == ("registered", "voided")
        assert rows[lacking].receipt != "lost"  # registered again, a real receipt now


async def test_the_province_client_authenticates_and_the_simulator_checks_it(
    tmp_path: Path,
) -> None:
    simulator = create_simulator_app(tmp_path / "province.db", api_key="s3cret-key")
    transport = httpx.ASGITransport(app=simulator)
    record = ProvinceRecord(
        record_id="k-1",
        id_number=id_number(1),
        name="张三",
        year=YEAR,
        subject="public",
        hours=1.0,
        category="training",
        title="课程",
        source="claim",
        completed_at=datetime(2026, 6, 1, tzinfo=UTC),
    )
    options: dict[str, Any] = {"transport": transport, "max_attempts": 1, "rate_limit_per_s": None}
    async with ProvinceClient("http://province", **options) as anonymous:
        with pytest.raises(ProvinceUnavailable, match="not authorized"):
            await anonymous.register([record])
    async with ProvinceClient("http://province", api_key="wrong", **options) as wrong:
        with pytest.raises(ProvinceUnavailable, match="401"):
            await wrong.register([record])
    settings = Settings(province_url="http://province", province_api_key="s3cret-key")  # type: ignore[arg-type]
    async with ProvinceClient.from_settings(settings, **options) as keyed:
        [receipt] = await keyed.register([record])
    assert receipt.record_id == "k-1" and not receipt.duplicate
