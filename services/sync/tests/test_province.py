"""The province adapter against the province simulator, both for real: the simulator runs under
uvicorn in a background thread on a free loopback port, with its SQLite file in ``tmp_path``."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from libs.contracts.province import PersonTotal, ProvinceRecord
from services.sync.province import ProvinceClient, ProvinceRejected, ProvinceUnavailable
from simulators.province.app import create_simulator_app
from simulators.province.faults import Faults

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

YEAR = 2024


# --------------------------------------------------------------------------------------------------
# Running the simulator
# --------------------------------------------------------------------------------------------------


@dataclass
class RunningSimulator:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "simulator did not stop"

    async def set_faults(self, **faults: Any) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.put("/province/admin/faults", json=faults)
            response.raise_for_status()

    async def stats(self) -> dict[str, int]:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.get("/province/admin/stats")
            response.raise_for_status()
            stats: dict[str, int] = response.json()
            return stats


StartSimulator = Callable[..., RunningSimulator]


def _bound_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[StartSimulator]:
    """Start a simulator (``db_path`` defaults to one per test; ``port`` 0 picks a free one)."""
    running: list[RunningSimulator] = []

    def start(
        db_path: Path | None = None, *, faults: Faults | None = None, port: int = 0
    ) -> RunningSimulator:
        app = create_simulator_app(db_path or tmp_path / "province.db", faults)
        sock = _bound_socket(port)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.01)
        bound_port = sock.getsockname()[1]
        sim = RunningSimulator(f"http://127.0.0.1:{bound_port}", bound_port, server, thread)
        running.append(sim)
        return sim

    yield start
    for sim in running:
        if sim.thread.is_alive():
            sim.stop()


def client_for(url: str, **options: Any) -> ProvinceClient:
    """A client with test-sized timeouts and backoff; ``options`` override."""
    defaults: dict[str, Any] = {
        "timeout_s": 0.3,
        "max_attempts": 4,
        "rate_limit_per_s": None,
        "breaker_threshold": 100,
        "breaker_reset_s": 0.3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "rng": random.Random(1),
    }
    defaults.update(options)
    return ProvinceClient(url, **defaults)


# --------------------------------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------------------------------


def id_number(n: int) -> str:
    return f"37040219900101{n:03d}{n % 10}"


def make_records(count: int, *, persons: int = 20, prefix: str = "r") -> list[ProvinceRecord]:
    hours = (1.5, 2.0, 0.3, 4.0, 1.1)
    return [
        ProvinceRecord(
            record_id=f"{prefix}-{i:05d}",
            id_number=id_number(i % persons),
            name=f"Person {i % persons}",
            year=YEAR,
            subject="public" if i % 3 == 0 else "professional",
            hours=hours[i % len(hours)],
            category="training",
            title=f"Course {i}",
            source="claim" if i % 2 else "city_platform",
            completed_at=datetime(YEAR, 3, 1 + i % 28, 9, 0, tzinfo=UTC),
        )
        for i in range(count)
    ]


def expected_totals(records: list[ProvinceRecord]) -> dict[str, tuple[float, float, int]]:
    """id_number -> (public, professional, records), summed in tenths to stay exact."""
    tenths: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in records:
        row = tenths[r.id_number]
        row[0 if r.subject == "public" else 1] += round(r.hours * 10)
        row[2] += 1
    return {k: (v[0] / 10, v[1] / 10, v[2]) for k, v in tenths.items()}


def as_map(totals: list[PersonTotal]) -> dict[str, tuple[float, float, int]]:
    return {t.id_number: (t.public, t.professional, t.records) for t in totals}


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


async def test_a_batch_registers_and_the_totals_are_right(start_simulator: StartSimulator) -> None:
    sim = start_simulator()
    records = make_records(250, persons=23)
    # no faults here: a generous timeout, so a slow moment of the machine is not a retry
    # (a retried batch answers "already held", which is what the fault tests check)
    async with client_for(sim.url, timeout_s=10.0) as client:
        receipts = await client.register(records)

        assert [r.record_id for r in receipts] == [r.record_id for r in records]
        assert not any(r.duplicate for r in receipts)
        assert len({r.receipt for r in receipts}) == 250
        assert (await sim.stats())["requests"] == 3  # batches of at most 100

        totals = await client.totals(YEAR, page_size=7)  # several pages
        assert as_map(totals) == expected_totals(records)
        assert [t.id_number for t in totals] == sorted(t.id_number for t in totals)

        mine = [r for r in records if r.id_number == id_number(5)]
        hours = await client.person_hours(id_number(5), YEAR)
        want = expected_totals(mine)[id_number(5)]
        assert (hours.public, hours.professional, len(hours.records)) == want
        assert {h.record_id for h in hours.records} == {r.record_id for r in mine}
        assert await client.totals(YEAR - 1) == []


async def test_replays_count_once_even_across_restarts(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    # no faults here: a generous timeout, so a loaded machine cannot turn a slow batch into a retry
    db = tmp_path / "kept.db"
    sim = start_simulator(db)
    records = make_records(120, persons=10)
    async with client_for(sim.url, timeout_s=5.0) as client:
        first = await client.register(records)
        again = await client.register(records)
        overlapping = await client.register(records[50:] + make_records(5, prefix="new"))
    assert all(r.duplicate for r in again)
    assert [r.receipt for r in again] == [r.receipt for r in first]
    assert [r.duplicate for r in overlapping] == [True] * 70 + [False] * 5

    sim.stop()
    sim = start_simulator(db)  # same file, new process state
    async with client_for(sim.url, timeout_s=5.0) as client:
        after_restart = await client.register(records)
        totals = await client.totals(YEAR)
    assert [r.receipt for r in after_restart] == [r.receipt for r in first]
    assert as_map(totals) == expected_totals(records + make_records(5, prefix="new"))
    assert (await sim.stats())["records"] == 125


async def test_a_conflicting_record_or_reused_key_is_rejected_not_retried(
    start_simulator: StartSimulator,
) -> None:
    sim = start_simulator()
    record = make_records(1)[0]
    async with client_for(sim.url) as client:
        await client.register([record])
        before = (await sim.stats())["requests"]
        changed = record.model_copy(update={"hours": record.hours + 1})
        with pytest.raises(ProvinceRejected) as rejected:
            await client.register([changed])
    assert (rejected.value.status, rejected.value.code) == (409, "record_conflict")
    assert (await sim.stats())["requests"] == before + 1

    # A rejected second batch keeps the receipts of the first; the third is not sent.
    batches = [*make_records(100, prefix="ok"), changed, *make_records(120, prefix="late")]
    async with client_for(sim.url) as client:
        with pytest.raises(ProvinceRejected) as rejected:
            await client.register(batches)
    assert [r.record_id for r in rejected.value.receipts] == [r.record_id for r in batches[:100]]
    assert (await sim.stats())["records"] == 101

    body = {"records": [record.model_dump(mode="json")]}
    async with httpx.AsyncClient(base_url=sim.url) as http:
        ok = await http.post("/province/v1/records", json=body, headers={"Idempotency-Key": "k1"})
        other = {"records": [make_records(2)[1].model_dump(mode="json")]}
        reused = await http.post(
            "/province/v1/records", json=other, headers={"Idempotency-Key": "k1"}
        )
        too_many = await http.post(
            "/province/v1/records",
            json={"records": [r.model_dump(mode="json") for r in make_records(101)]},
        )
    assert ok.status_code == 200 and ok.json()["receipts"][0]["duplicate"] is True
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert reused.headers["content-type"] == "application/problem+json"
    assert too_many.status_code == 422 and too_many.json()["code"] == "validation_error"


async def test_under_faults_every_record_is_registered_exactly_once(
    start_simulator: StartSimulator,
) -> None:
    sim = start_simulator()
    await sim.set_faults(
        error_rate=0.2, timeout_rate=0.2, duplicate_receipt_rate=0.3, hang_s=2, seed=7
    )
    records = make_records(200, persons=25)
    receipts = []
    async with client_for(sim.url, max_attempts=15) as client:
        for start in range(0, len(records), 25):
            receipts += await client.register(records[start : start + 25])

        stats = await sim.stats()
        assert stats["errors"] >= 1
        assert stats["timeouts"] >= 1
        assert stats["duplicate_receipts"] >= 1
        assert stats["records"] == 200
        assert any(r.duplicate for r in receipts)  # a resend after a lost response
        assert len({r.receipt for r in receipts}) == 200

        await sim.set_faults()  # clear, then read the truth
        assert as_map(await client.totals(YEAR)) == expected_totals(records)
        held = {}
        for n in range(25):
            hours = await client.person_hours(id_number(n), YEAR)
            held.update({h.record_id: h.receipt for h in hours.records})
    assert held == {r.record_id: r.receipt for r in receipts}


async def test_failures_beyond_the_attempts_raise_unavailable(
    start_simulator: StartSimulator,
) -> None:
    sim = start_simulator(faults=Faults(error_rate=1.0))
    async with client_for(sim.url, max_attempts=3) as client:
        with pytest.raises(ProvinceUnavailable) as unavailable:
            await client.register(make_records(5))
    assert "503" in str(unavailable.value)
    assert unavailable.value.receipts == []
    stats = await sim.stats()
    assert (stats["errors"], stats["records"]) == (3, 0)


async def test_429_retry_after_is_honoured(start_simulator: StartSimulator) -> None:
    sim = start_simulator()
    await sim.set_faults(rate_limit_per_s=4)
    records = make_records(8)
    started = time.monotonic()
    async with client_for(sim.url) as client:
        for record in records:  # one request each
            await client.register([record])
    elapsed = time.monotonic() - started
    stats = await sim.stats()
    # 4 go through, the 5th gets 429 Retry-After: 1, the client waits that long instead of
    # hammering, and the rest fit in the refilled bucket.
    assert 1 <= stats["rate_limited"] <= 2
    assert elapsed >= 0.95
    assert stats["records"] == 8


async def test_the_client_side_rate_limit_keeps_under_the_province_limit(
    start_simulator: StartSimulator,
) -> None:
    sim = start_simulator(faults=Faults(rate_limit_per_s=5))
    started = time.monotonic()
    async with client_for(sim.url, rate_limit_per_s=4) as client:
        for record in make_records(8):
            await client.register([record])
    elapsed = time.monotonic() - started
    stats = await sim.stats()
    assert stats["rate_limited"] == 0
    assert elapsed >= 0.9  # 4 at once, then one every 0.25 s


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that actually reach the network."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def test_the_breaker_opens_fails_fast_and_half_opens(
    start_simulator: StartSimulator,
) -> None:
    with _bound_socket() as sock:  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
    transport = CountingTransport()
    clock = ManualClock()
    client = client_for(
        f"http://127.0.0.1:{port}",
        max_attempts=2,
        breaker_threshold=3,
        breaker_reset_s=30,
        transport=transport,
        clock=clock,
    )
    async with client:
        with pytest.raises(ProvinceUnavailable, match="ConnectError"):
            await client.person_hours(id_number(1), YEAR)
        assert (transport.sent, client.breaker.state) == (2, "closed")

        with pytest.raises(ProvinceUnavailable, match="circuit open"):
            await client.person_hours(id_number(1), YEAR)
        assert (transport.sent, client.breaker.state) == (3, "open")

        started = time.monotonic()
        with pytest.raises(ProvinceUnavailable, match="circuit open") as fast:
            await client.register(make_records(3))
        assert time.monotonic() - started < 0.05
        assert transport.sent == 3
        assert fast.value.retry_after == 30

        clock.advance(29.9)
        assert client.breaker.state == "open"
        clock.advance(0.1)
        assert client.breaker.state == "half_open"
        with pytest.raises(ProvinceUnavailable):  # one trial, refused, open again
            await client.person_hours(id_number(1), YEAR)
        assert (transport.sent, client.breaker.state) == (4, "open")

        start_simulator(port=port)  # the province comes back
        with pytest.raises(ProvinceUnavailable, match="circuit open"):
            await client.person_hours(id_number(1), YEAR)
        clock.advance(30)
        hours = await client.person_hours(id_number(1), YEAR)
        assert hours.records == []
        assert (transport.sent, client.breaker.state) == (5, "closed")


async def test_voiding_a_record_removes_it_from_the_totals(start_simulator: StartSimulator) -> None:
    sim = start_simulator()
    records = make_records(6, persons=2)  # person 0: r-0, r-2, r-4; person 1: r-1, r-3, r-5
    async with client_for(sim.url) as client:
        await client.register(records)
        voided = await client.void("r-00000", reason="certificate revoked")
        again = await client.void("r-00000")
        assert again == voided

        hours = await client.person_hours(id_number(0), YEAR)
        kept = [r for r in records if r.id_number == id_number(0) and r.record_id != "r-00000"]
        assert {h.record_id for h in hours.records} == {r.record_id for r in kept}
        assert (hours.public, hours.professional) == expected_totals(kept)[id_number(0)][:2]
        assert as_map(await client.totals(YEAR)) == expected_totals(records[1:])

        replay = await client.register(records[:1])
        assert (replay[0].duplicate, replay[0].voided) == (True, True)
        assert as_map(await client.totals(YEAR)) == expected_totals(records[1:])

        with pytest.raises(ProvinceRejected) as unknown:
            await client.void("never-sent")
        assert unknown.value.status == 404
    assert (await sim.stats())["voided"] == 1


async def test_id_numbers_stay_out_of_the_logs(
    start_simulator: StartSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = start_simulator(faults=Faults(error_rate=1.0))
    caplog.set_level(logging.DEBUG)
    async with client_for(sim.url, max_attempts=2) as client:
        with pytest.raises(ProvinceUnavailable):
            await client.person_hours(id_number(7), YEAR)
    assert "HTTP Request" in caplog.text  # httpx did log the request line...
    assert id_number(7) not in caplog.text  # ...with the ID number masked
