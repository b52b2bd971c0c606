"""Transient failures are waited out, poison is dead-lettered and re-drivable (issue 7, item 2).

Through a real service (review) on SQLite and PostgreSQL, its real consumer and inbox; the
handler of ``claim.submitted`` is wrapped by a test double that fails the way we need:

* for a while with the errors a PostgreSQL restart or a busy SQLite gives: the event is not
  dead-lettered, nothing behind it is handled meanwhile (consumption paused), ``/readyz`` is red,
  and once the failure passes it is handled exactly once;
* with a bug (poison): the event is dead-lettered and the next one flows; after the "fix"
  ``POST /v1/admin/dead-letters/{id}/replay`` has its effect once, and a second delivery of the
  same event none.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from ce.cli import app as cli
from libs.common.eventlog import EmbeddedLog
from libs.common.events import Envelope, topic_of
from libs.common.faults import is_transient
from libs.common.settings import Settings
from libs.common.uow import UnitOfWork
from services.review.handlers import events
from services.review.main import create_app
from tests.support import TcpProxy, assert_problem, served_on_loopback, submitted, until

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow


class SerializationFailure(Exception):
    """What asyncpg raises for SQLSTATE 40001 (SQLAlchemy wraps it)."""

    sqlstate = "40001"


def connection_refused() -> BaseException:
    return ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


def invalidated() -> BaseException:
    return sa_exc.DBAPIError(
        "INSERT INTO inbox", {}, Exception("terminating connection"), connection_invalidated=True
    )


def serialization() -> BaseException:
    return sa_exc.DBAPIError("UPDATE", {}, SerializationFailure("could not serialize"))


def sqlite_locked() -> BaseException:
    return sa_exc.OperationalError("INSERT", {}, Exception("database is locked"))


def admin_shutdown() -> BaseException:
    class AdminShutdown(Exception):
        sqlstate = "57P01"

    return sa_exc.DBAPIError("SELECT 1", {}, AdminShutdown("terminating connection"))


TRANSIENT: list[Callable[[], BaseException]] = [
    connection_refused,
    invalidated,
    serialization,
    sqlite_locked,
    admin_shutdown,
    lambda: TimeoutError("timed out"),
]


@pytest.mark.parametrize("make", TRANSIENT)
def test_transient_failures_are_recognised(make: Callable[[], BaseException]) -> None:
    assert is_transient(make())


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad payload"),
        KeyError("claim_id"),
        sa_exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
        sa_exc.OperationalError("SELECT", {}, Exception("no such table: tasks")),
    ],
)
def test_poison_is_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


class Fault:
    """The test double around the real handler: fails as told, counts real effects."""

    def __init__(self) -> None:
        self.transient_until = 0.0  # monotonic time until which a transient failure is raised
        self.make: Callable[[], BaseException] = connection_refused
        self.broken = False  # a bug: fails every time (poison)
        self.calls = 0

    def wrap(self, real: Any) -> Any:
        async def handle(uow: UnitOfWork, envelope: Envelope) -> None:
            self.calls += 1
            if time.monotonic() < self.transient_until:
                raise self.make()
            if self.broken:
                raise ValueError("handler bug (test double)")
            await real(uow, envelope)

        return handle


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'review.db'}"
    make: Callable[[str], str] = request.getfixturevalue("make_pg_database")
    return make("review_dead")


@pytest.fixture
def fault(monkeypatch: pytest.MonkeyPatch) -> Fault:
    fault = Fault()
    handlers = events._handlers  # the service's own router, as the app uses it
    monkeypatch.setitem(handlers, "claim.submitted", fault.wrap(handlers["claim.submitted"]))
    return fault


@pytest.fixture
async def review(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(
        service="review",
        data_dir=tmp_path,
        database_url=database_url,
        consumer_backoff_s=0.05,
        consumer_max_backoff_s=0.2,
        consumer_poison_attempts=3,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def publish(tmp_path: Path, *envelopes: Envelope, key: str = "same-partition") -> None:
    log = EmbeddedLog(tmp_path / "events.db")
    await log.start()
    for envelope in envelopes:
        await log.publish(topic_of("claims"), key, envelope.to_bytes(), {"event_type": "x"})
    await log.stop()


class Api:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient) -> None:
        self.http = http
        self.ops = {"Authorization": f"Bearer {app.state.tokens.mint(role='ops')}"}
        self.city = {"Authorization": f"Bearer {app.state.tokens.mint(role='city_admin')}"}

    async def dead(self) -> list[dict[str, Any]]:
        r = await self.http.get("/v1/admin/dead-letters", headers=self.ops)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def tasks(self, claim_id: str) -> list[dict[str, Any]]:
        r = await self.http.get(
            "/v1/review-tasks", params={"claim_id": claim_id}, headers=self.city
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


@pytest.fixture
async def api(review: FastAPI) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=review)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield Api(review, http)


@pytest.mark.parametrize("make", [connection_refused, invalidated, serialization, sqlite_locked])
async def test_a_database_outage_pauses_consumption_and_dead_letters_nothing(
    review: FastAPI, api: Api, fault: Fault, tmp_path: Path, make: Callable[[], BaseException]
) -> None:
    fault.make = make
    fault.transient_until = time.monotonic() + 3600  # "PostgreSQL is down" until we say so
    await publish(tmp_path, submitted("claim-outage"), submitted("claim-behind"))

    async def stuck() -> dict[str, Any] | None:
        r = await api.http.get("/readyz")
        return r.json() if r.status_code == 503 else None

    readiness = await until(stuck)
    assert readiness["checks"]["consumer"].startswith("error: ")
    await until(lambda: _at_least(fault, 6))  # far more than the 3 poison attempts
    assert await api.dead() == []
    assert await api.tasks("claim-behind") == []  # paused: nothing behind it was handled
    fault.transient_until = 0.0  # the database is back

    async def both() -> bool:
        return bool(await api.tasks("claim-outage")) and bool(await api.tasks("claim-behind"))

    await until(both)
    assert len(await api.tasks("claim-outage")) == 1
    assert await api.dead() == []
    assert (await api.http.get("/readyz")).status_code == 200


async def _at_least(fault: Fault, calls: int) -> bool:
    return fault.calls >= calls


async def test_poison_is_dead_lettered_then_replayed_with_one_effect(
    review: FastAPI, api: Api, fault: Fault, tmp_path: Path
) -> None:
    fault.broken = True
    poison = submitted("claim-poison")
    await publish(tmp_path, poison)
    [letter] = await until(api.dead, timeout_s=30)
    assert letter["event_type"] == "claim.submitted" and "handler bug" in letter["error"]
    assert await api.tasks("claim-poison") == []
    url = f"/v1/admin/dead-letters/{letter['id']}/replay"
    # still broken: the replay fails, the letter stays with the new error
    assert_problem(await api.http.post(url, headers=api.ops), 409, "replay_failed")
    assert [d["id"] for d in await api.dead()] == [letter["id"]]
    # only the operators and the city bureau re-drive
    for role in ("system", "personnel", "unit_admin"):
        token = review.state.tokens.mint(role=role, org_id="o", person_id="p")
        r = await api.http.post(url, headers={"Authorization": f"Bearer {token}"})
        assert_problem(r, 403, "role_not_allowed")
    fault.broken = False  # the handler is fixed
    r = await api.http.post(url, headers=api.ops)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": letter["id"], "event_type": "claim.submitted", "outcome": "applied"}
    assert len(await api.tasks("claim-poison")) == 1
    assert await api.dead() == []
    assert_problem(await api.http.post(url, headers=api.ops), 404, "dead_letter_not_found")
    # the same event delivered again (or replayed from a copy) has no second effect
    await publish(tmp_path, poison)

    async def skipped() -> bool:
        return 'outcome="skipped"' in (await api.http.get("/metrics")).text

    await until(skipped)
    assert len(await api.tasks("claim-poison")) == 1


async def test_ce_dead_letters_lists_and_replays_one_or_all(
    review: FastAPI, api: Api, fault: Fault, tmp_path: Path
) -> None:
    fault.broken = True
    await publish(tmp_path, submitted("claim-cli-1"), submitted("claim-cli-2"))
    letters = await until(lambda: _dead_count(api, 2), timeout_s=30)
    fault.broken = False
    async with served_on_loopback(review) as base_url:
        token = review.state.tokens.mint(role="ops")
        common = ["--url", base_url, "--token", token]

        def ce(*args: str) -> Result:
            return CliRunner().invoke(cli, ["dead-letters", *args, *common])

        listed = await asyncio.to_thread(ce, "list", "review")
        assert listed.exit_code == 0, listed.output
        assert {json.loads(line)["id"] for line in listed.output.splitlines()} == {
            d["id"] for d in letters
        }
        first, second = letters
        one = await asyncio.to_thread(ce, "replay", first["id"], "review")
        assert one.exit_code == 0, one.output
        assert json.loads(one.output)["outcome"] == "applied"
        rest = await asyncio.to_thread(ce, "replay", "--all", "review")
        assert rest.exit_code == 0, rest.output
        assert [json.loads(line)["id"] for line in rest.output.splitlines()] == [second["id"]]
        bad = await asyncio.to_thread(ce, "replay", "review")
        assert bad.exit_code != 0
    assert await api.dead() == []
    for claim_id in ("claim-cli-1", "claim-cli-2"):
        assert len(await api.tasks(claim_id)) == 1


async def _dead_count(api: Api, n: int) -> list[dict[str, Any]] | None:
    letters = await api.dead()
    return letters if len(letters) >= n else None


@pytest.mark.postgres
async def test_a_real_postgresql_outage_dead_letters_nothing(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    """The service reaches PostgreSQL through a proxy; taking the proxy down cuts every
    connection and refuses new ones, as a PostgreSQL restart does. Events arriving meanwhile wait
    (real asyncpg errors, no test double) and are handled once PostgreSQL is back."""
    url = make_url(await asyncio.to_thread(make_pg_database, "review_pg_down"))
    postgres = TcpProxy(f"{url.host}:{url.port or 5432}")
    await postgres.up()
    settings = Settings(
        service="review",
        data_dir=tmp_path,
        database_url=url.set(host="127.0.0.1", port=postgres.port).render_as_string(
            hide_password=False
        ),
        consumer_backoff_s=0.05,
        consumer_max_backoff_s=0.2,
        consumer_poison_attempts=3,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            api = Api(app, http)
            await postgres.down()  # PostgreSQL goes away
            await publish(tmp_path, submitted("claim-pg-1"), submitted("claim-pg-2"))

            async def consumer_stuck() -> dict[str, Any] | None:
                r = await http.get("/readyz")
                checks: dict[str, Any] = r.json()["checks"]
                return checks if r.status_code == 503 and "consumer" in checks else None

            checks = await until(consumer_stuck)
            assert checks["database"].startswith("error")
            await asyncio.sleep(2.0)  # many retries: more than the 3 poison attempts
            assert 'outcome="dead"' not in (await http.get("/metrics")).text
            await postgres.up()  # PostgreSQL is back

            async def both_routed() -> bool:
                return all([await api.tasks("claim-pg-1"), await api.tasks("claim-pg-2")])

            await until(both_routed, timeout_s=30)
            assert len(await api.tasks("claim-pg-1")) == 1
            assert await api.dead() == []
            assert (await http.get("/readyz")).status_code == 200
    await postgres.down()
