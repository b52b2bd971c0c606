"""The unit of work: one transaction that holds a use case's state change *and* its events.

Use cases never commit. They change state through ``uow.session`` and call ``uow.emit(...)``; the
caller commits the unit of work, which writes the collected events to the outbox in the same
transaction and then wakes the relay. Leaving the block without ``commit()`` rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.common.clock import Clock
from libs.common.context import current_correlation_id
from libs.common.db import InfraTables, utcnow
from libs.common.events import Envelope, Payload


class UnitOfWork:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        infra: InfraTables,
        *,
        source: str,
        topic: str,
        on_commit: Callable[[], None] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.infra = infra
        self.source = source
        self.topic = topic
        self._on_commit = on_commit
        self.now = clock  # the service clock: handlers stamp times with ``uow.now()``
        self._events: list[Envelope] = []
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside 'async with'")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessionmaker()
        self._events = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed; unlike rollback() it does not expire
        # the loaded objects, so a read-only use case can still shape them after the block
        session, self._session = self.session, None
        await session.close()

    def emit(self, payload: Payload, *, subject: str) -> Envelope:
        """Collect an event; it is written to the outbox when (and only if) the unit commits."""
        envelope = payload.envelope(
            source=self.source, subject=subject, correlation_id=current_correlation_id()
        )
        self._events.append(envelope)
        return envelope

    async def commit(self) -> None:
        if self._events:
            rows: list[dict[str, Any]] = [
                {
                    "event_id": str(e.id),
                    "topic": self.topic,
                    "key": e.subject,
                    "event_type": e.type,
                    "payload": e.to_bytes(),
                    "headers": {
                        "event_type": e.type,
                        "correlation_id": e.correlation_id or "",
                    },
                }
                for e in self._events
            ]
            await self.session.execute(self.infra.insert_outbox, rows)
        await self.session.commit()
        had_events = bool(self._events)
        self._events = []
        if had_events and self._on_commit is not None:
            self._on_commit()
