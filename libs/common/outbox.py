"""The outbox relay: publishes outbox rows to the bus in insertion order and marks them sent.

Woken right after a unit of work commits events, and polling as a fallback (another process of the
same service, or a row left behind by a crash). A row stays unsent until the bus confirms it, so a
crash or a timed-out send means it is sent again: consumers deduplicate by event id (the inbox).
On a failure the batch stops there, so no later event of any key overtakes an earlier one.
On PostgreSQL an advisory lock keeps one relay of a service publishing at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from libs.common.bus import EventBus, Outgoing, PublishError
from libs.common.db import InfraTables, utcnow
from libs.common.tasks import LoopTask

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        infra: InfraTables,
        bus: EventBus,
        *,
        name: str,
        poll_s: float = 1.0,
        batch_size: int = 200,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._engine = engine
        self._leader_conn: AsyncConnection | None = None
        self._sessionmaker = sessionmaker
        self._outbox = infra.outbox
        self._bus = bus
        self._lock_key = zlib.crc32(f"outbox:{name}".encode()) & 0x7FFFFFFF
        self.poll_s = poll_s
        self.batch_size = batch_size
        self.max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._loop = LoopTask("outbox-relay")
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._loop.spawn(self._run())

    async def stop(self) -> None:
        await self._loop.cancel()
        if self._leader_conn is not None:
            await self._leader_conn.close()
            self._leader_conn = None

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff or self.poll_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                drained = await self.drain()
                backoff = 0.0 if drained else min(max(backoff * 2, 0.2), self.max_backoff_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; will retry")
                backoff = min(max(backoff * 2, 0.5), self.max_backoff_s)

    async def pending(self) -> int:
        async with self._sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(self._outbox)
                .where(self._outbox.c.sent_at.is_(None))
            )
            return int(count or 0)

    async def drain(self) -> bool:
        """Publish everything unsent. Returns False when the bus refused (the relay backs off).

        Rows are read in one short transaction and marked in another: no database lock is held
        while the bus is slow or down.
        """
        if not await self._is_leader():
            return True
        while True:
            async with self._sessionmaker() as session:
                rows = (
                    await session.execute(
                        select(self._outbox)
                        .where(self._outbox.c.sent_at.is_(None))
                        .order_by(self._outbox.c.id)
                        .limit(self.batch_size)
                    )
                ).all()
                await session.commit()
            if not rows:
                return True
            sent_ids, error = await self._publish(rows)
            async with self._sessionmaker() as session:
                if sent_ids:
                    await session.execute(
                        update(self._outbox)
                        .where(self._outbox.c.id.in_(sent_ids))
                        .values(sent_at=utcnow(), attempts=self._outbox.c.attempts + 1)
                    )
                if error is not None:
                    await session.execute(
                        update(self._outbox)
                        .where(self._outbox.c.id == rows[len(sent_ids)].id)
                        .values(attempts=self._outbox.c.attempts + 1, last_error=error[:1000])
                    )
                await session.commit()
            self.published += len(sent_ids)
            if error is not None:
                return False

    async def _publish(self, rows: Sequence[Any]) -> tuple[list[int], str | None]:
        """Publish ``rows`` in order (the embedded log writes them in one transaction); the ids
        the bus confirmed, and the error that stopped it, if any."""
        try:
            await self._bus.publish_many(
                [Outgoing(r.topic, r.key, r.payload, dict(r.headers)) for r in rows]
            )
        except PublishError as exc:
            log.warning("publish failed, outbox keeps the event", extra={"topic": rows[0].topic})
            return [r.id for r in rows[: exc.confirmed]], str(exc) or type(exc).__name__
        return [r.id for r in rows], None

    async def _is_leader(self) -> bool:
        """On PostgreSQL, hold a session advisory lock so one relay per service publishes.

        The lock lives as long as its connection: a relay that dies frees it for another, and
        a relay whose connection broke finds out here and competes for the lock again.
        """
        if self._engine.dialect.name != "postgresql":
            return True
        if self._leader_conn is not None:
            try:
                await self._leader_conn.scalar(text("SELECT 1"))
                await self._leader_conn.commit()
                return True
            except Exception:
                log.warning("outbox relay lost its leader connection; competing again")
                with contextlib.suppress(Exception):
                    await self._leader_conn.close()
                self._leader_conn = None
        conn = await self._engine.connect()
        got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_key})
        await conn.commit()
        if not got:
            await conn.close()
            return False
        self._leader_conn = conn
        return True
