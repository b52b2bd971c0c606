"""The outbox and the inbox inside a real service (review), on SQLite and on PostgreSQL.

- Inbox: the same event delivered twice has one effect.
- Outbox: while the bus refuses, events wait in the outbox; afterwards every one is published,
  in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from libs.common.bus import Message, Outgoing, PublishError
from libs.common.eventlog import EmbeddedLog
from libs.common.events import Envelope, topic_of
from libs.common.settings import Settings
from services.review import service
from services.review.main import create_app
from tests.support import submitted, until


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'review.db'}"
    make: Callable[[str], str] = request.getfixturevalue("make_pg_database")
    return make("review")


@pytest.fixture
async def review(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(service="review", data_dir=tmp_path, database_url=database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_same_event_twice_has_one_effect(review: FastAPI, tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path / "events.db")
    await log.start()
    envelope = submitted("claim-1")
    for _ in range(2):  # a redelivery, as after a crash between handling and the offset commit
        await log.publish(topic_of("claims"), "claim-1", envelope.to_bytes(), {})
    await log.stop()
    token = review.state.tokens.mint(role="city_admin")
    transport = httpx.ASGITransport(app=review)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

        async def both_seen() -> bool:
            text = (await http.get("/metrics")).text
            return 'outcome="skipped"' in text and 'outcome="applied"' in text

        await until(both_seen)
        tasks = await http.get(
            "/v1/review-tasks",
            params={"claim_id": "claim-1"},
            headers={"Authorization": f"Bearer {token}"},
        )
        history = await http.get(
            "/v1/claims/claim-1/history", headers={"Authorization": f"Bearer {token}"}
        )
    assert tasks.status_code == 200
    assert len(tasks.json()["items"]) == 1
    assert [s["decision"] for s in history.json()["steps"]] == ["submitted"]


class RefusingBus(EmbeddedLog):
    """The real embedded log, refusing every publish while ``down`` is set (a broker outage)."""

    down = True

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        if self.down:
            raise PublishError("broker unavailable (test outage)")
        await super().publish(topic, key, value, headers)

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        if self.down:
            raise PublishError("broker unavailable (test outage)")
        await super().publish_many(messages)


async def test_outbox_keeps_events_through_an_outage_and_publishes_in_order(
    review: FastAPI, tmp_path: Path
) -> None:
    state = review.state.service
    bus = RefusingBus(tmp_path / "relay-events.db")
    await bus.start()
    from libs.common.outbox import OutboxRelay

    relay = OutboxRelay(
        state.engine, state.sessionmaker, state.spec.infra, bus, name="t", poll_s=0.05
    )
    token = review.state.tokens.mint(role="city_admin")
    codes = [f"D{i:02d}" for i in range(12)]
    transport = httpx.ASGITransport(app=review)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        await state.relay.stop()  # the app's own relay would publish to its own (healthy) log
        for code in codes:
            r = await http.post(
                "/v1/orgs",
                json={"code": code, "name": code, "type": "district"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
    assert await relay.drain() is False  # the outage: nothing published, nothing lost
    assert await relay.pending() == len(codes)
    bus.down = False
    assert await relay.drain() is True
    assert await relay.pending() == 0
    sub = bus.subscribe("checker", [topic_of("review")])
    await sub.start()
    got: list[Message] = []
    while len(got) < len(codes):
        batch = await sub.fetch(timeout_s=0.5)
        assert batch or got, "nothing was published"
        got.extend(batch)
    await sub.stop()
    await relay.stop()
    await bus.stop()
    published = [json.loads(m.value)["data"]["code"] for m in got]
    assert sorted(published) == codes and len(published) == len(set(published))
    # one org per key: order across keys is not promised by the log, but the relay sent in order
    assert relay.published == len(codes)


async def test_one_relay_per_service_publishes_and_another_takes_over(
    tmp_path: Path, make_pg_database: Callable[[str], str]
) -> None:
    """Two replicas of a service on PostgreSQL: one relay holds the lead; when it goes away
    the other publishes. Nothing is published twice by two leaders at once."""
    url = await asyncio.to_thread(make_pg_database, "relay_lead")
    app = create_app(Settings(service="review", data_dir=tmp_path, database_url=url))
    async with app.router.lifespan_context(app):
        state = app.state.service
        await state.relay.stop()
        bus = EmbeddedLog(tmp_path / "lead-events.db")
        await bus.start()
        from libs.common.outbox import OutboxRelay

        first = OutboxRelay(state.engine, state.sessionmaker, state.spec.infra, bus, name="review")
        second = OutboxRelay(state.engine, state.sessionmaker, state.spec.infra, bus, name="review")
        async with state.uow() as uow:
            await service.create_org(
                uow, code="D-lead-1", name="区", type="district", parent_id=None
            )
            await uow.commit()
        assert await first._is_leader() is True
        assert await second._is_leader() is False
        await second.drain()
        assert await second.pending() == 1  # the follower published nothing
        await first.drain()
        assert first.published == 1 and await first.pending() == 0
        await first.stop()  # the leader goes away and frees the lock
        async with state.uow() as uow:
            await service.create_org(
                uow, code="D-lead-2", name="区", type="district", parent_id=None
            )
            await uow.commit()
        await second.drain()
        assert second.published == 1 and await second.pending() == 0
        await second.stop()
        await bus.stop()


async def test_a_poison_event_is_dead_lettered_visibly_and_the_rest_flows(
    review: FastAPI, tmp_path: Path
) -> None:
    """An event its handler cannot process is retried, then stored as a dead letter (shown by
    the admin endpoint); the events after it are still handled."""
    log = EmbeddedLog(tmp_path / "events.db")
    await log.start()
    poison = Envelope(
        type="claim.submitted", source="claims", subject="claim-bad", data={"claim_id": "x"}
    )
    await log.publish(topic_of("claims"), "claim-bad", poison.to_bytes(), {})
    good = submitted("claim-after-poison")
    await log.publish(topic_of("claims"), "claim-bad", good.to_bytes(), {})  # same partition
    await log.stop()
    city = {"Authorization": f"Bearer {review.state.tokens.mint(role='city_admin')}"}
    transport = httpx.ASGITransport(app=review)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

        async def dead() -> list[dict[str, Any]]:
            r = await http.get("/v1/admin/dead-letters", headers=city)
            assert r.status_code == 200, r.text
            return list(r.json()["items"])

        [letter] = await until(dead, timeout_s=30)
        assert letter["event_type"] == "claim.submitted" and "ValidationError" in letter["error"]

        async def routed() -> bool:
            r = await http.get(
                "/v1/review-tasks", params={"claim_id": "claim-after-poison"}, headers=city
            )
            return bool(r.json()["items"])

        await until(routed)
        assert (await http.get("/readyz")).json()["checks"] == {"database": "ok", "bus": "ok"}
        metrics = (await http.get("/metrics")).text
        assert 'outcome="dead"' in metrics and 'outcome="applied"' in metrics
        personnel = review.state.tokens.mint(role="personnel", person_id="p")
        refused = await http.get(
            "/v1/admin/dead-letters", headers={"Authorization": f"Bearer {personnel}"}
        )
        assert refused.status_code == 403


async def test_a_group_of_events_is_recorded_in_one_go_and_each_has_one_effect(
    review: FastAPI,
) -> None:
    """``EventRouter.dispatch_many`` (what the consumer runs for a group): an event seen before,
    a second copy inside the group and an event nobody routes have no effect; the others one
    each, in order, in one transaction."""
    from services.review.handlers import events

    state = review.state.service
    first, second = submitted("claim-g1"), submitted("claim-g2")
    unrouted = Envelope(type="nobody.listens", source="t", subject="x", data={})

    def message(envelope: Envelope, offset: int) -> Message:
        return Message(topic_of("claims"), 0, offset, envelope.subject, envelope.to_bytes())

    assert await events.dispatch_many(state.uow, [message(first, 0)]) == [True]
    group = [message(e, i) for i, e in enumerate([first, first, unrouted, second, second], 1)]
    assert await events.dispatch_many(state.uow, group) == [False, False, False, True, False]
    async with state.sessionmaker() as session:
        tasks = (
            await session.execute(
                text("SELECT claim_id FROM review_tasks WHERE claim_id LIKE 'claim-g%'")
            )
        ).all()
        inbox = await session.scalar(
            text("SELECT count(*) FROM inbox WHERE event_id IN (:a, :b, :c)").bindparams(
                a=str(first.id), b=str(second.id), c=str(unrouted.id)
            )
        )
    assert sorted(t for (t,) in tasks) == ["claim-g1", "claim-g2"]
    assert inbox == 2  # an event nobody handles is not recorded
