"""A service whose broker is down when it starts (issue 7, item 8): it starts anyway, reports not
ready, keeps what it must publish in the outbox, and once the broker answers it connects, publishes
and consumes — without a restart.

The service (review, on Kafka) is given a bootstrap address where nothing listens; later a TCP
proxy to the test broker starts listening there (the broker then advertises its own address).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from libs.common.events import topic_of
from libs.common.kafka import KafkaBus
from libs.common.outbox import OutboxRelay
from libs.common.settings import Settings
from services.review.main import create_app
from tests.fixtures.broker import Broker
from tests.support import TcpProxy, free_port, submitted, until

pytestmark = [pytest.mark.kafka]


async def test_a_service_starts_without_its_broker_and_connects_when_it_comes(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    settings = Settings(
        service="review",
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'review.db'}",
        bus="kafka",
        kafka_bootstrap=f"127.0.0.1:{port}",
        kafka_idempotence=False,  # the test broker has no InitProducerId
        kafka_send_timeout_s=2.0,
        kafka_connect_timeout_s=2.0,
        consumer_max_backoff_s=0.5,
        outbox_poll_s=0.2,
    )
    app = create_app(settings)
    city = {"Authorization": f"Bearer {app.state.tokens.mint(role='city_admin')}"}
    code = f"D-{uuid.uuid4().hex[:8]}"
    claim_id = f"claim-{uuid.uuid4().hex}"
    async with app.router.lifespan_context(app):  # starts although the broker is not there
        state = app.state.service
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["bus"] == "error"
            assert ready.json()["checks"]["database"] == "ok"
            # the API works; the event waits in the outbox
            r = await http.post(
                "/v1/orgs", json={"code": code, "name": "区", "type": "district"}, headers=city
            )
            assert r.status_code == 201, r.text
            await asyncio.sleep(0.5)
            assert await state.relay.pending() == 1
            broker = TcpProxy(kafka_broker.bootstrap, port)
            await broker.up()  # the broker comes back
            try:

                async def is_ready() -> bool:
                    return (await http.get("/readyz")).status_code == 200

                await until(is_ready, timeout_s=60)
                assert await until(_drained(state.relay), timeout_s=30)
                # and it consumes: a claim submitted now is routed to a review task
                producer = KafkaBus(kafka_broker.bootstrap, enable_idempotence=False)
                await producer.start()
                envelope = submitted(claim_id)
                await producer.publish(
                    topic_of("claims"),
                    claim_id,
                    envelope.to_bytes(),
                    {"event_type": envelope.type},
                )
                await producer.stop()

                async def routed() -> bool:
                    r = await http.get(
                        "/v1/review-tasks", params={"claim_id": claim_id}, headers=city
                    )
                    return bool(r.json()["items"])

                await until(routed, timeout_s=60)
            finally:
                await broker.down()


def _drained(relay: OutboxRelay) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await relay.pending() == 0

    return probe
