"""Rate limits shared across replicas (``CE_RATE_LIMIT_STORAGE=redis://…``): two app
instances of the registry on the real Redis at 127.0.0.1:6379 spend one budget; Redis
unreachable, each falls back to its own (still limited, never a 500); the default stays in
memory. Every test run uses keys of its own prefix and deletes them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from libs.common.limits import MemoryRateStore, Rate, RedisRateStore
from libs.common.settings import Settings
from services.registry.main import create_app
from services.registry.state import RegistrySettings
from tests.support import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
LOOKUP = "/v1/certificates/ZZCE2026-AAAA-BBBB-CCCC-DDDD"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await redis.ping()
    except OSError as exc:  # pragma: no cover - the dev/CI machines run Redis
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    value = f"ce-test:{uuid.uuid4().hex}:"
    try:
        yield value
    finally:
        keys = [key async for key in redis.scan_iter(match=value + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@asynccontextmanager
async def replica(data_dir: Path, storage: str, prefix: str) -> AsyncIterator[httpx.AsyncClient]:
    """One registry app (a replica) with its own database, limits in ``storage``."""
    settings = Settings(
        service="registry",
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'registry.db'}",
        rate_limit_storage=storage,
        rate_limit_key_prefix=prefix,
    )
    app = create_app(settings, RegistrySettings.model_construct(verify_limit=10))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
            yield http


async def lookups(http: httpx.AsyncClient, n: int) -> list[int]:
    return [(await http.get(LOOKUP)).status_code for _ in range(n)]


async def test_two_replicas_share_one_budget(tmp_path: Path, prefix: str) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(tmp_path / "a", REDIS_URL, prefix))
        b = await stack.enter_async_context(replica(tmp_path / "b", REDIS_URL, prefix))
        # 10 lookups a minute per address: 6 at one replica, 4 at the other, then both refuse
        assert await lookups(a, 6) == [404] * 6
        assert await lookups(b, 4) == [404] * 4
        refused = await b.get(LOOKUP)
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await a.get(LOOKUP)).status_code == 429
    redis = Redis.from_url(REDIS_URL)
    keys = {key.decode() async for key in redis.scan_iter(match=prefix + "*")}
    await redis.aclose()
    # per service, per limit, per address; the bucket expires once it would be full again
    assert f"{prefix}registry:route:GET /v1/certificates/{{code}}:198.51.100.7" in keys


async def test_in_memory_each_replica_has_its_own(tmp_path: Path, prefix: str) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(tmp_path / "a", "memory", prefix))
        b = await stack.enter_async_context(replica(tmp_path / "b", "memory", prefix))
        assert await lookups(a, 10) == [404] * 10
        assert await lookups(b, 10) == [404] * 10  # the default: N replicas, N budgets
        assert (await a.get(LOOKUP)).status_code == 429


async def test_redis_down_each_replica_limits_on_its_own(tmp_path: Path, prefix: str) -> None:
    """Fail open to the per-replica limit: answered (no 500, no wait on Redis per request),
    and still refused past the replica's own budget."""
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with replica(tmp_path / "a", down, prefix) as a:
        assert await lookups(a, 10) == [404] * 10
        assert (await a.get(LOOKUP)).status_code == 429


async def test_the_shared_bucket_refills_and_fails_over() -> None:
    """The store itself: a burst, then refilled at the rate on Redis's clock; a store whose
    Redis is gone counts in memory and tries Redis again after ``retry_s``."""
    rate = Rate("t", rate=2.0, burst=2)
    store = RedisRateStore(REDIS_URL, prefix=f"ce-test:{uuid.uuid4().hex}:")
    try:
        key = uuid.uuid4().hex
        assert [await store.take(rate, key) for _ in range(2)] == [0.0, 0.0]
        wait = await store.take(rate, key)
        assert 0 < wait <= 0.5  # one token comes back in half a second
        await asyncio.sleep(wait + 0.05)
        assert await store.take(rate, key) == 0.0
    finally:
        await store.aclose()
    now = [0.0]
    gone = RedisRateStore(
        f"redis://127.0.0.1:{free_port()}/0", prefix="x:", retry_s=5, clock=lambda: now[0]
    )
    try:
        slow = Rate("t", rate=0.001, burst=1)
        assert await gone.take(slow, "k") == 0.0 and gone.degraded
        assert await gone.take(slow, "k") > 0  # the fallback's own bucket is spent
        assert isinstance(gone.fallback, MemoryRateStore)
    finally:
        await gone.aclose()


def test_the_storage_setting_is_checked() -> None:
    assert Settings().rate_limit_storage == "memory"
    assert Settings(rate_limit_storage="rediss://cache:6380/1").rate_limit_storage
    with pytest.raises(ValidationError, match="CE_RATE_LIMIT_STORAGE"):
        Settings(rate_limit_storage="memcached://cache")
